/*
 * solbench.c - command line of solbench, an MQTT 3.1.1 load generator:
 * options, file-descriptor limit, address lookup, allocation of the
 * connections, then the run (loop.c) and the report (report.c).
 *
 * Not for: comparing brokers (tools/bench-vs-mosquitto.sh runs it against
 * Sol and Mosquitto) or checking protocol conformance.
 */
#include "solbench.h"

#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mqtt.h"
#include "mqtt_topic.h"

#define FD_SPARE          64u
#define DEFAULT_WINDOW    64u
#define DEFAULT_WINDOW_Q0 (64u << 10)
#define MAX_PUBS          (1u << 20)
#define MAX_SIZE          (16u << 20) /* the output buffer holds at least one message */

static const char usage_text[] =
    "usage: solbench [options]\n"
    "  --host H            broker address (default 127.0.0.1)\n"
    "  -p, --port N        broker port (default 1883)\n"
    "  -P, --publishers N  publishing connections (default 1)\n"
    "  -S, --subscribers N subscribing connections (default 1)\n"
    "  -C, --idle N        idle connections, connected first (default 0)\n"
    "  -q, --qos 0|1|2     publish and subscribe QoS (default 0)\n"
    "  -s, --size N        payload bytes, >= 16 (default 64)\n"
    "  --topics N          publisher i publishes to bench/<i mod N> (default 1)\n"
    "  --filter F          subscribers' topic filter (default bench/+)\n"
    "  --rate N            msg/s over all publishers; 0 = as fast as the window allows\n"
    "  --window N          QoS>0: unacked publishes per publisher (default 64);\n"
    "                      QoS 0: unsent output bytes per publisher (default 65536)\n"
    "  -d, --duration S    seconds of publishing (default 5)\n"
    "  --drain S           at most S seconds to wait for in-flight messages (default 2)\n"
    "  --connect-timeout S at most S seconds to connect and subscribe (default 30)\n"
    "  --connect-burst N   handshakes in progress at once (default 256)\n"
    "  --clean 0|1         subscribers' clean-session flag (default 1)\n"
    "  --client-prefix P   client id prefix (default sb<pid>-, or solbench- with --clean 0)\n"
    "  --broker-pid PID    sample the broker's VmRSS before and at the end of the run\n"
    "  --source A          bind each connection to local IPv4 address A before connecting\n"
    "  --sources N         spread connections round-robin over A, A+1, ... A+N-1 (default 1):\n"
    "                      each source address has its own ~28k ephemeral ports, so\n"
    "                      100,000 connections need --source 127.0.0.2 --sources 4 or more\n"
    "  --json              print one JSON line of results\n";

enum long_only {
    OPT_HOST = 256,
    OPT_TOPICS,
    OPT_FILTER,
    OPT_RATE,
    OPT_WINDOW,
    OPT_DRAIN,
    OPT_CONNECT_TIMEOUT,
    OPT_CONNECT_BURST,
    OPT_CLEAN,
    OPT_PREFIX,
    OPT_BROKER_PID,
    OPT_SOURCE,
    OPT_SOURCES,
    OPT_JSON,
    OPT_HELP,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, 'p'},
    {"publishers", required_argument, NULL, 'P'},
    {"subscribers", required_argument, NULL, 'S'},
    {"idle", required_argument, NULL, 'C'},
    {"qos", required_argument, NULL, 'q'},
    {"size", required_argument, NULL, 's'},
    {"topics", required_argument, NULL, OPT_TOPICS},
    {"filter", required_argument, NULL, OPT_FILTER},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"duration", required_argument, NULL, 'd'},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"connect-burst", required_argument, NULL, OPT_CONNECT_BURST},
    {"clean", required_argument, NULL, OPT_CLEAN},
    {"client-prefix", required_argument, NULL, OPT_PREFIX},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Parses an unsigned integer in [min, max]; returns 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_u32(const char *s, uint64_t min, uint64_t max, uint32_t *out)
{
    uint64_t v = 0;
    int rc = parse_u64(s, min, max, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

static int parse_seconds(const char *s, double min, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min) || v > 1e6)
        return -EINVAL;
    *out = v;
    return 0;
}

static void set_defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = "1883";
    o->pubs = 1;
    o->subs = 1;
    o->size = 64;
    o->topics = 1;
    o->filter = "bench/+";
    o->duration_s = 5;
    o->drain_s = 2;
    o->connect_timeout_s = 30;
    o->connect_burst = 256;
    o->is_clean = true;
    o->sources = 1;
}

/* Options that take a number; returns 0, -EINVAL, or 1 if opt is not one of them. */
static int parse_numeric(int opt, const char *arg, struct bench_opts *o)
{
    uint64_t v = 0;
    int rc = 0;
    switch (opt) {
    case 'P':
        return parse_u32(arg, 0, MAX_PUBS, &o->pubs);
    case 'S':
        return parse_u32(arg, 0, 1000000, &o->subs);
    case 'C':
        return parse_u32(arg, 0, 1000000, &o->idle);
    case 'q':
        rc = parse_u64(arg, 0, 2, &v);
        o->qos = (uint8_t)v;
        return rc;
    case 's':
        rc = parse_u64(arg, BENCH_STAMP_LEN, MAX_SIZE, &v);
        o->size = (size_t)v;
        return rc;
    case OPT_TOPICS:
        return parse_u32(arg, 1, 1000000, &o->topics);
    case OPT_RATE:
        return parse_seconds(arg, 0, &o->rate);
    case OPT_WINDOW:
        return parse_u64(arg, 1, UINT32_MAX, &o->window);
    case 'd':
        return parse_seconds(arg, 0.001, &o->duration_s);
    case OPT_DRAIN:
        return parse_seconds(arg, 0, &o->drain_s);
    case OPT_CONNECT_TIMEOUT:
        return parse_seconds(arg, 0.001, &o->connect_timeout_s);
    case OPT_CONNECT_BURST:
        return parse_u32(arg, 1, 1000000, &o->connect_burst);
    case OPT_CLEAN:
        rc = parse_u64(arg, 0, 1, &v);
        o->is_clean = v == 1;
        return rc;
    case OPT_BROKER_PID:
        rc = parse_u64(arg, 1, INT32_MAX, &v);
        o->broker_pid = (long)v;
        return rc;
    case OPT_SOURCES:
        return parse_u32(arg, 1, 65536, &o->sources);
    default:
        return 1;
    }
}

static int parse_other(int opt, const char *arg, struct bench_opts *o)
{
    switch (opt) {
    case OPT_HOST:
        o->host = arg;
        return 0;
    case 'p':
        o->port = arg;
        return 0;
    case OPT_FILTER:
        o->filter = arg;
        return 0;
    case OPT_PREFIX:
        o->prefix = arg;
        return 0;
    case OPT_SOURCE:
        o->source = arg;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    default:
        return -EINVAL;
    }
}

/* --source must be an IPv4 literal and the range A .. A+N-1 must not wrap. */
static int check_sources(const struct bench_opts *o)
{
    struct in_addr a;
    if (o->source == NULL)
        return 0;
    if (inet_pton(AF_INET, o->source, &a) != 1) {
        fprintf(stderr, "solbench: --source '%s' is not an IPv4 address\n", o->source);
        return -EINVAL;
    }
    if ((uint64_t)ntohl(a.s_addr) + o->sources - 1 > UINT32_MAX) {
        fprintf(stderr, "solbench: --source %s + --sources %u runs past 255.255.255.255\n",
                o->source, o->sources);
        return -EINVAL;
    }
    return 0;
}

/* Fills defaults that depend on other options and checks combinations. */
static int finish_options(struct bench_opts *o, char *prefix_buf, size_t prefix_cap)
{
    if (o->window == 0)
        o->window = o->qos == 0 ? DEFAULT_WINDOW_Q0 : DEFAULT_WINDOW;
    if (o->qos > 0 && o->window > 65535) {
        fprintf(stderr, "solbench: --window must be at most 65535 at QoS %u\n", o->qos);
        return -EINVAL;
    }
    if (mqtt_topic_filter_check(mqtt_bytes_from_cstr(o->filter)) != MQTT_OK) {
        fprintf(stderr, "solbench: --filter '%s' is not a valid topic filter\n", o->filter);
        return -EINVAL;
    }
    if (o->prefix == NULL) {
        if (o->is_clean)
            snprintf(prefix_buf, prefix_cap, "sb%ld-", (long)getpid());
        else
            snprintf(prefix_buf, prefix_cap, "solbench-");
        o->prefix = prefix_buf;
    }
    if (strlen(o->prefix) > 64) {
        fprintf(stderr, "solbench: --client-prefix is longer than 64 bytes\n");
        return -EINVAL;
    }
    return check_sources(o);
}

static int parse_options(int argc, char **argv, struct bench_opts *o, char *prefix_buf,
                         size_t prefix_cap)
{
    set_defaults(o);
    int opt;
    while ((opt = getopt_long(argc, argv, "p:P:S:C:q:s:d:", long_options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage_text, stdout);
            exit(0);
        }
        int rc = parse_numeric(opt, optarg, o);
        if (rc == 1)
            rc = parse_other(opt, optarg, o);
        if (rc != 0) {
            if (opt != '?')
                fprintf(stderr, "solbench: bad value '%s'\n", optarg ? optarg : "");
            fputs(usage_text, stderr);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "solbench: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return finish_options(o, prefix_buf, prefix_cap);
}

/* Raises the soft RLIMIT_NOFILE to cover every connection; fails if the hard limit is lower. */
static int raise_fd_limit(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("solbench: getrlimit(RLIMIT_NOFILE)");
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr, "solbench: need %llu file descriptors, hard limit is %llu\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("solbench: setrlimit(RLIMIT_NOFILE)");
        return -1;
    }
    return 0;
}

static int resolve(struct bench *b)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(b->o.host, b->o.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "solbench: %s:%s: %s\n", b->o.host, b->o.port, gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    if (b->o.source == NULL)
        return 0;
    if (b->addr.ss_family != AF_INET) {
        fprintf(stderr, "solbench: --source needs an IPv4 broker address (--host)\n");
        return -1;
    }
    struct in_addr a;
    (void)inet_pton(AF_INET, b->o.source, &a); /* checked in check_sources */
    b->source_base = ntohl(a.s_addr);
    return 0;
}

static int init_publisher(struct bench *b, struct conn *c)
{
    c->pid_used = calloc(PID_BITMAP_BYTES, 1);
    if (c->pid_used == NULL)
        return -ENOMEM;
    c->next_pid = 1;
    int n = snprintf(c->topic, sizeof(c->topic), "bench/%u", c->index % b->o.topics);
    c->topic_len = (size_t)n;
    struct mqtt_bytes name = {(const uint8_t *)c->topic, c->topic_len};
    b->pub_matches[c->index] = mqtt_topic_matches(mqtt_bytes_from_cstr(b->o.filter), name);
    return 0;
}

static int init_conn(struct bench *b, struct conn *c, uint32_t i)
{
    c->fd = -1;
    c->role = i < b->o.idle ? ROLE_IDLE : i < b->o.idle + b->o.subs ? ROLE_SUB : ROLE_PUB;
    c->index = i < b->o.idle               ? i
               : i < b->o.idle + b->o.subs ? i - b->o.idle
                                           : i - b->o.idle - b->o.subs;
    if (c->role == ROLE_PUB)
        return init_publisher(b, c);
    if (c->role == ROLE_SUB && b->o.pubs > 0) {
        c->streams = calloc(b->o.pubs, sizeof(*c->streams));
        if (c->streams == NULL)
            return -ENOMEM;
    }
    return 0;
}

static int bench_init(struct bench *b)
{
    b->nconns = b->o.idle + b->o.subs + b->o.pubs;
    b->epfd = -1;
    b->rate_per_pub = b->o.pubs > 0 ? b->o.rate / b->o.pubs : 0;
    b->conns = calloc(b->nconns ? b->nconns : 1, sizeof(*b->conns));
    b->pub_matches = calloc(b->o.pubs ? b->o.pubs : 1, sizeof(*b->pub_matches));
    b->payload = malloc(b->o.size);
    if (b->conns == NULL || b->pub_matches == NULL || b->payload == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < b->o.size; i++)
        b->payload[i] = (uint8_t)('a' + i % 26);
    for (uint32_t i = 0; i < b->nconns; i++) {
        if (init_conn(b, &b->conns[i], i) != 0)
            return -ENOMEM;
    }
    return 0;
}

static void bench_deinit(struct bench *b)
{
    for (uint32_t i = 0; b->conns != NULL && i < b->nconns; i++)
        conn_free(&b->conns[i], b->o.pubs);
    free(b->conns);
    free(b->pub_matches);
    free(b->payload);
}

int main(int argc, char **argv)
{
    static struct bench b; /* the histogram is large; keep it off the stack */
    char prefix[96];
    if (parse_options(argc, argv, &b.o, prefix, sizeof(prefix)) != 0)
        return 2;
    uint64_t need = (uint64_t)b.o.idle + b.o.subs + b.o.pubs + FD_SPARE;
    if (raise_fd_limit(need) != 0 || resolve(&b) != 0)
        return 1;
    if (bench_init(&b) != 0) {
        fprintf(stderr, "solbench: out of memory\n");
        bench_deinit(&b);
        return 1;
    }
    int rc = bench_run(&b);
    if (rc != 0)
        fprintf(stderr, "solbench: %s\n", b.r.failure);
    report_print(&b);
    bench_deinit(&b);
    return rc == 0 ? 0 : 1;
}
