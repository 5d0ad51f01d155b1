/*
 * tls.c - the TLS transport: per-listener SSL_CTX (certificate, key, CA,
 * minimum version, client certificates) and the non-blocking handshake,
 * read, write and close behind struct conn_transport.
 *
 * Nothing here blocks: every SSL_ERROR_WANT_READ/WANT_WRITE is reported to
 * conn.c, which arms the matching libev watcher and calls again. Writes run
 * with SSL_MODE_ENABLE_PARTIAL_WRITE (one record at a time, so a full socket
 * costs at most one pending record) and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
 * (a retry may gather the same bytes into another buffer).
 *
 * Not for: the output queue, timers or MQTT (conn.c), sockets (listener.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "server_internal.h"
#include "log.h"

/* ---- errors ---- */

/* The reason of the oldest queued OpenSSL error (the cause; later ones are
 * consequences), and clears the queue. */
static unsigned long take_error(void)
{
    unsigned long first = ERR_get_error();
    while (ERR_get_error() != 0)
        ;
    return first;
}

static const char *error_reason(unsigned long e)
{
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    return reason != NULL ? reason : "unknown error";
}

/* ---- the listener's context ---- */

static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0; /* never prompt on a terminal: an encrypted key fails to load */
}

static int min_version(const char *tls_version, int *out)
{
    if (tls_version == NULL || strcmp(tls_version, "tlsv1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(tls_version, "tlsv1.3") == 0)
        *out = TLS1_3_VERSION;
    else
        return -1;
    return 0;
}

static int load_ca(SSL_CTX *ctx, const char *cafile)
{
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
        return -1;
    /* Tells the client which CAs its certificate may chain to. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
    if (names == NULL)
        return -1;
    SSL_CTX_set_client_CA_list(ctx, names);
    return 0;
}

/* Loads a's files into ctx; the failing step's description in *what. */
static int configure(SSL_CTX *ctx, const struct server_listen *a, const char **what,
                     const char **file)
{
    int version = 0;
    *what = "tls_version";
    *file = a->tls_version;
    if (min_version(a->tls_version, &version) < 0 ||
        SSL_CTX_set_min_proto_version(ctx, version) != 1)
        return -1;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    *what = "certfile";
    *file = a->certfile;
    if (SSL_CTX_use_certificate_chain_file(ctx, a->certfile) != 1)
        return -1;
    *what = "keyfile";
    *file = a->keyfile;
    if (a->keyfile == NULL || SSL_CTX_use_PrivateKey_file(ctx, a->keyfile, SSL_FILETYPE_PEM) != 1)
        return -1;
    *what = "keyfile does not match certfile:";
    if (SSL_CTX_check_private_key(ctx) != 1)
        return -1;
    *what = "cafile";
    *file = a->cafile;
    if (a->cafile != NULL && load_ca(ctx, a->cafile) < 0)
        return -1;
    *what = "require_certificate without cafile";
    *file = NULL;
    if (a->require_certificate && a->cafile == NULL)
        return -1;
    return 0;
}

static void set_modes(SSL_CTX *ctx, const struct server_listen *a)
{
    static const unsigned char session_context[] = "sol";
    /* No client renegotiation (a CPU sink), no compression (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* RELEASE_BUFFERS: an idle TLS connection holds no record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Resumption with client certificates needs a session id context. */
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof(session_context) - 1);
    if (a->require_certificate)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
}

int tls_ctx_new(const struct server_listen *a, const char *name, struct ssl_ctx_st **out, char *err,
                size_t err_len)
{
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, err_len, "%s: TLS: %s", name, error_reason(take_error()));
        return -1;
    }
    const char *what = NULL, *file = NULL;
    if (configure(ctx, a, &what, &file) < 0) {
        unsigned long last = ERR_peek_last_error();
        unsigned long e = take_error();
        char why[160];
        if (last != 0 && ERR_GET_REASON(last) != ERR_GET_REASON(e)) /* cause (consequence) */
            snprintf(why, sizeof(why), "%s (%s)", error_reason(e), error_reason(last));
        else
            snprintf(why, sizeof(why), "%s", e != 0 ? error_reason(e) : "invalid");
        if (file != NULL)
            snprintf(err, err_len, "%s: %s %s: %s", name, what, file, why);
        else
            snprintf(err, err_len, "%s: TLS: %s", name, what);
        SSL_CTX_free(ctx);
        return -1;
    }
    set_modes(ctx, a);
    *out = ctx;
    return 0;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

int tls_ctx_ref(struct ssl_ctx_st *ctx)
{
    return SSL_CTX_up_ref(ctx) == 1 ? 0 : -1;
}

/* ---- the connection ---- */

int tls_conn_start(struct conn *c, struct ssl_ctx_st *ctx)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
        take_error();
        SSL_free(ssl);
        return -ENOMEM;
    }
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    c->tp = &conn_transport_tls;
    c->is_handshaking = true;
    return 0;
}

/*
 * Maps a failed SSL call (rc <= 0) to the transport's convention: -1 with
 * errno EAGAIN (and which event the retry waits for) or a failure errno.
 * *wants_other is set when the retry waits for the other direction.
 */
static int map_error(struct conn *c, int rc, bool *wants_read, bool *wants_write)
{
    int saved_errno = errno;
    int e = SSL_get_error(c->ssl, rc);
    c->tls_error = (uint32_t)take_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *wants_read = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *wants_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        c->is_tls_broken = true;
        errno = saved_errno != 0 ? saved_errno : ECONNRESET;
        return -1;
    case SSL_ERROR_SSL:
    default:
        c->is_tls_broken = true;
        errno = EPROTO;
        return -1;
    }
}

/* The client certificate's subject CN into the session (use_identity_as_username). */
static int set_identity(struct conn *c, char *why, size_t why_len)
{
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    if (cert == NULL) {
        snprintf(why, why_len, "use_identity_as_username: no client certificate");
        return -1;
    }
    const X509_NAME *subject = X509_get_subject_name(cert);
    int i = subject != NULL ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    ASN1_STRING *data = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)) : NULL;
    unsigned char *cn = NULL;
    int len = data != NULL ? ASN1_STRING_to_UTF8(&cn, data) : -1;
    int rc = -1;
    if (len <= 0 || memchr(cn, '\0', (size_t)len) != NULL)
        snprintf(why, why_len, "use_identity_as_username: the certificate has no usable CN");
    else if (session_client_set_identity(c->client, (const char *)cn) != 0)
        snprintf(why, why_len, "out of memory");
    else
        rc = 0;
    OPENSSL_free(cn);
    X509_free(cert);
    return rc;
}

static void describe_handshake_error(struct conn *c, int err, char *why, size_t why_len)
{
    long verify = SSL_get_verify_result(c->ssl);
    if (err == EPROTO && verify != X509_V_OK)
        snprintf(why, why_len, "%s (%s)", error_reason(c->tls_error),
                 X509_verify_cert_error_string(verify));
    else if (err == EPROTO)
        snprintf(why, why_len, "%s", error_reason(c->tls_error));
    else if (err == 0)
        snprintf(why, why_len, "connection closed by peer");
    else
        snprintf(why, why_len, "%s", strerror(err));
}

static int tls_handshake(struct conn *c, char *why, size_t why_len)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->is_handshaking = false;
        if (c->use_identity_as_username)
            return set_identity(c, why, why_len) == 0 ? 1 : -1;
        return 1;
    }
    bool wants_read = false, wants_write = false;
    int mapped = map_error(c, rc, &wants_read, &wants_write);
    if (mapped < 0 && errno == EAGAIN) {
        c->handshake_wants_write = wants_write;
        return 0;
    }
    c->is_tls_broken = true;
    describe_handshake_error(c, mapped == 0 ? 0 : errno, why, why_len);
    return -1;
}

static ssize_t tls_read(struct conn *c, void *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    bool wants_read = false, wants_write = false;
    int rc = map_error(c, n, &wants_read, &wants_write);
    c->read_wants_write = wants_write;
    return rc;
}

/* One record's worth of the queue: the first iov as is when it is large,
 * else the first iovs gathered into srv->tls_out. Retries see the same
 * leading bytes, at least as many (the queue only grows at its tail). */
static const void *gather(struct conn *c, const struct iovec *iov, int iovcnt, size_t *len)
{
    if (iovcnt == 1 || iov[0].iov_len >= SERVER_TLS_RECORD_MAX) {
        *len = iov[0].iov_len;
        return iov[0].iov_base;
    }
    size_t used = 0;
    for (int i = 0; i < iovcnt && used < SERVER_TLS_RECORD_MAX; i++) {
        size_t n = iov[i].iov_len;
        if (n > SERVER_TLS_RECORD_MAX - used)
            n = SERVER_TLS_RECORD_MAX - used;
        memcpy(c->srv->tls_out + used, iov[i].iov_base, n);
        used += n;
    }
    *len = used;
    return c->srv->tls_out;
}

static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt <= 0)
        return 0;
    size_t len = 0;
    const void *buf = gather(c, iov, iovcnt, &len);
    if (len == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    bool wants_read = false, wants_write = false;
    int rc = map_error(c, n, &wants_read, &wants_write);
    c->write_wants_read = wants_read;
    if (rc == 0) {
        errno = EPIPE; /* the peer closed: nothing more can be written */
        return -1;
    }
    return rc;
}

static bool tls_has_pending(const struct conn *c)
{
    return SSL_pending(c->ssl) > 0;
}

static void tls_describe_error(const struct conn *c, int err, char *buf, size_t len)
{
    if (err == EPROTO && c->tls_error != 0)
        snprintf(buf, len, "TLS: %s", error_reason(c->tls_error));
    else
        snprintf(buf, len, "%s", strerror(err));
}

static void tls_close(struct conn *c)
{
    if (c->ssl != NULL) {
        /* One non-blocking close_notify when the session is healthy; the
         * answer is not awaited (MQTT has already said goodbye). */
        ERR_clear_error();
        if (!c->is_tls_broken && !c->is_handshaking && SSL_shutdown(c->ssl) < 0)
            take_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (close(c->fd) < 0)
        log_debug("close fd %d: %s", c->fd, strerror(errno));
}

static const char *tls_stage(const struct conn *c)
{
    (void)c;
    return "TLS";
}

const struct conn_transport conn_transport_tls = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .writev = tls_writev,
    .has_pending = tls_has_pending,
    .describe_error = tls_describe_error,
    .close = tls_close,
    .stage = tls_stage,
};
