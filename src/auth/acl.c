/*
 * acl.c - Mosquitto ACL files: load "user", "topic" and "pattern" lines, and
 * decide whether a client may read, write or subscribe to a topic.
 *
 * READ and WRITE mirror Mosquitto 2.0's acl_file check (src/security_default.c,
 * mosquitto_acl_check_default()), checked against Debian's mosquitto 2.0.11:
 * the client's own rules first (deny rules before the others), then patterns
 * (deny patterns first), then denied. Patterns replace %c and %u wherever they
 * occur, as 2.0.11 does (later Mosquitto versions only replace whole levels).
 * SUBSCRIBE is Sol's own, see auth_acl_check() in auth.h.
 *
 * Topic matching is a small level-by-level matcher local to this file: the
 * module map lets src/auth include only util and OpenSSL, so it cannot use
 * mqtt_topic_matches(); and the SUBSCRIBE check needs filter-vs-filter
 * relations (covers, overlaps) that the codec does not offer anyway.
 *
 * Not for: the password file (password.c), or acting on a denial (session).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_internal.h"

#define FILTER_MAX   65535 /* longest MQTT string */
#define SCRATCH_SIZE 256   /* expanded patterns up to this size stay on the stack */

struct acl_rule {
    char *filter;        /* owned; validated as an MQTT topic filter */
    unsigned access;     /* AUTH_READ | AUTH_WRITE; 0 for deny */
    bool has_user_subst; /* contains %u: skipped for anonymous clients */
};

struct acl_rules {
    struct acl_rule *v; /* owned */
    size_t n;
    size_t cap;
};

/* One user's rules (or the anonymous ones, or the patterns). Deny rules are
 * kept apart because they are tried first (Mosquitto puts them at the front
 * of the list). */
struct acl_section {
    char *username; /* owned; NULL for the anonymous section and patterns */
    struct acl_rules deny;
    struct acl_rules allow;
};

struct auth_acl {
    struct acl_section anon;     /* topic lines before any user line */
    struct acl_section patterns; /* every pattern line */
    struct acl_section *users;   /* owned; sorted by username once loaded */
    size_t user_count;
    size_t user_cap;
};

/* ---- topic matching ---------------------------------------------------------- */

struct view {
    const char *p;
    size_t len;
};

/* Splits a topic or filter into its levels: "a//b" is "a", "", "b". */
struct levels {
    struct view rest;
    bool is_done;
};

static bool level_next(struct levels *it, struct view *level)
{
    if (it->is_done)
        return false;
    const char *slash = memchr(it->rest.p, '/', it->rest.len);
    if (slash == NULL) {
        *level = it->rest;
        it->is_done = true;
        return true;
    }
    level->p = it->rest.p;
    level->len = (size_t)(slash - it->rest.p);
    it->rest.p = slash + 1;
    it->rest.len -= level->len + 1;
    return true;
}

static bool is_wild(struct view level, char c)
{
    return level.len == 1 && level.p[0] == c;
}

static bool is_same(struct view a, struct view b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* A filter whose first level is a wildcard never matches a topic starting
 * with '$' [MQTT-4.7.2-1]; Mosquitto applies this to ACL rules too. */
static bool starts_wild(struct view f)
{
    return f.len > 0 && (f.p[0] == '+' || f.p[0] == '#');
}

static bool starts_dollar(struct view f)
{
    return f.len > 0 && f.p[0] == '$';
}

/*
 * True if every topic that f matches is also matched by rule. With f a topic
 * name (no wildcards), this is plain MQTT matching: '+' is one level, '#' the
 * rest including the parent ("a/#" matches "a").
 */
static bool covers(struct view rule, struct view f)
{
    if (starts_dollar(f) && starts_wild(rule))
        return false;
    struct levels r = {rule, false}, t = {f, false};
    struct view rl, fl;
    for (;;) {
        bool has_r = level_next(&r, &rl), has_f = level_next(&t, &fl);
        if (!has_f)
            return !has_r || is_wild(rl, '#');
        if (!has_r)
            return false;
        if (is_wild(rl, '#'))
            return true;
        if (is_wild(fl, '#'))
            return false;
        if (!is_wild(rl, '+') && (is_wild(fl, '+') || !is_same(rl, fl)))
            return false;
    }
}

/* True if some topic name is matched by both filters. */
static bool overlaps(struct view a, struct view b)
{
    if ((starts_dollar(a) && starts_wild(b)) || (starts_dollar(b) && starts_wild(a)))
        return false;
    struct levels x = {a, false}, y = {b, false};
    struct view xl, yl;
    for (;;) {
        bool has_x = level_next(&x, &xl), has_y = level_next(&y, &yl);
        if (!has_x || !has_y)
            return (!has_x && !has_y) || (has_x && is_wild(xl, '#')) || (has_y && is_wild(yl, '#'));
        if (is_wild(xl, '#') || is_wild(yl, '#'))
            return true;
        if (!is_wild(xl, '+') && !is_wild(yl, '+') && !is_same(xl, yl))
            return false;
    }
}

/* ---- pattern expansion ------------------------------------------------------- */

/* Who is asking; client_id and username are NULL when checking plain rules. */
struct who {
    const char *client_id;
    const char *username;
};

/* Where expanded patterns are built: on the stack, or on the heap if long. */
struct scratch {
    char stack[SCRATCH_SIZE];
    char *heap; /* owned; freed by the caller of check_section() */
    size_t heap_cap;
};

/* Writes pat with %c and %u replaced into dst (if not NULL) and returns the
 * length. 2.0.11 replaces them wherever they occur; %u only for a client with
 * a username (rule_filter() skips %u rules for the others). */
static size_t expand(const char *pat, const struct who *who, char *dst)
{
    size_t n = 0;
    for (size_t i = 0; pat[i] != '\0'; i++) {
        const char *sub = NULL;
        if (pat[i] == '%' && pat[i + 1] == 'c')
            sub = who->client_id;
        else if (pat[i] == '%' && pat[i + 1] == 'u')
            sub = who->username;
        if (sub == NULL) {
            if (dst != NULL)
                dst[n] = pat[i];
            n++;
            continue;
        }
        size_t len = strlen(sub);
        if (dst != NULL)
            memcpy(dst + n, sub, len);
        n += len;
        i++;
    }
    return n;
}

/* Sets *f to the rule's filter as it applies to who. Returns 1, 0 if the
 * rule does not apply (%u for an anonymous client), -1 on out of memory. */
static int rule_filter(const struct acl_rule *r, const struct who *who, struct scratch *sc,
                       struct view *f)
{
    if (who == NULL) {
        *f = (struct view){r->filter, strlen(r->filter)};
        return 1;
    }
    if (r->has_user_subst && who->username == NULL)
        return 0;
    size_t len = expand(r->filter, who, NULL);
    char *dst = sc->stack;
    if (len > sizeof(sc->stack)) {
        if (len > sc->heap_cap) {
            char *p = realloc(sc->heap, len);
            if (p == NULL)
                return -1;
            sc->heap = p;
            sc->heap_cap = len;
        }
        dst = sc->heap;
    }
    expand(r->filter, who, dst);
    *f = (struct view){dst, len};
    return 1;
}

/* ---- checking ---------------------------------------------------------------- */

enum verdict {
    UNDECIDED,
    ALLOWED,
    DENIED,
};

static bool rule_allows(const struct acl_rule *r, struct view f, struct view topic, unsigned access)
{
    if (access == AUTH_SUBSCRIBE)
        return (r->access & AUTH_READ) != 0 && overlaps(f, topic);
    return (r->access & access) != 0 && covers(f, topic);
}

/* Deny rules first: one that covers the topic (or the whole subscription
 * filter) denies. Then the first rule granting access allows. */
static enum verdict check_section(const struct acl_section *s, const struct who *who,
                                  struct view topic, unsigned access, struct scratch *sc)
{
    struct view f;
    for (size_t i = 0; i < s->deny.n; i++) {
        int rc = rule_filter(&s->deny.v[i], who, sc, &f);
        if (rc < 0 || (rc > 0 && covers(f, topic)))
            return DENIED;
    }
    for (size_t i = 0; i < s->allow.n; i++) {
        int rc = rule_filter(&s->allow.v[i], who, sc, &f);
        if (rc < 0)
            return DENIED;
        if (rc > 0 && rule_allows(&s->allow.v[i], f, topic, access))
            return ALLOWED;
    }
    return UNDECIDED;
}

static const struct acl_section *find_user(const struct auth_acl *acl, const char *username)
{
    size_t lo = 0, hi = acl->user_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, acl->users[mid].username);
        if (c == 0)
            return &acl->users[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static enum verdict check_patterns(const struct auth_acl *acl, const struct who *who,
                                   struct view topic, unsigned access)
{
    if (acl->patterns.deny.n == 0 && acl->patterns.allow.n == 0)
        return UNDECIDED;
    /* A '+' or '#' in an id or username would become a wildcard once
     * substituted into a pattern, so Mosquitto denies such clients outright. */
    if (who->client_id == NULL || strpbrk(who->client_id, "+#") != NULL ||
        (who->username != NULL && strpbrk(who->username, "+#") != NULL))
        return DENIED;
    struct scratch sc;
    sc.heap = NULL;
    sc.heap_cap = 0;
    enum verdict v = check_section(&acl->patterns, who, topic, access, &sc);
    free(sc.heap);
    return v;
}

int auth_acl_check(const struct auth_acl *acl, const char *client_id, const char *username,
                   const char *topic, size_t topic_len, unsigned access)
{
    if (access != AUTH_READ && access != AUTH_WRITE && access != AUTH_SUBSCRIBE)
        return AUTH_ERR_DENIED;
    struct view t = {topic, topic_len};
    const struct acl_section *own = username != NULL ? find_user(acl, username) : &acl->anon;
    enum verdict v = UNDECIDED;
    if (own != NULL)
        v = check_section(own, NULL, t, access, NULL);
    if (v == UNDECIDED) {
        struct who who = {client_id, username};
        v = check_patterns(acl, &who, t, access);
    }
    return v == ALLOWED ? AUTH_OK : AUTH_ERR_DENIED;
}

/* ---- loading ----------------------------------------------------------------- */

/* Mosquitto's mosquitto_sub_topic_check(): '+' and '#' only as whole levels,
 * '#' only last, at most 65535 bytes. */
static bool is_valid_filter(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > FILTER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '+' && s[i] != '#')
            continue;
        bool starts_level = i == 0 || s[i - 1] == '/';
        bool ends_level = i + 1 == len || s[i + 1] == '/';
        if (!starts_level || !ends_level || (s[i] == '#' && i + 1 != len))
            return false;
    }
    return true;
}

static int rules_append(struct acl_rules *rules, const struct acl_rule *r)
{
    if (rules->n == rules->cap) {
        size_t cap = rules->cap == 0 ? 8 : rules->cap * 2;
        struct acl_rule *v = realloc(rules->v, cap * sizeof(*v));
        if (v == NULL)
            return AUTH_ERR_NOMEM;
        rules->v = v;
        rules->cap = cap;
    }
    rules->v[rules->n++] = *r;
    return AUTH_OK;
}

static void section_deinit(struct acl_section *s)
{
    for (size_t i = 0; i < s->deny.n; i++)
        free(s->deny.v[i].filter);
    for (size_t i = 0; i < s->allow.n; i++)
        free(s->allow.v[i].filter);
    free(s->deny.v);
    free(s->allow.v);
    free(s->username);
}

struct loader {
    struct auth_acl *acl;
    size_t user_index; /* SIZE_MAX: topic lines are anonymous */
};

/* Parses "[ACCESS] FILTER" into *access and *filter. */
static int parse_access_filter(struct auth_file *f, const char *keyword, char *args,
                               unsigned *access, char **filter)
{
    if (args[0] == '\0')
        return auth_file_fail(f, AUTH_ERR_INVALID, "%s: missing topic filter", keyword);
    size_t word_len = strcspn(args, " \t");
    *access = AUTH_READ | AUTH_WRITE;
    *filter = args;
    if (args[word_len] == '\0')
        return AUTH_OK; /* one word: it is the filter, as in Mosquitto */
    args[word_len] = '\0';
    *filter = auth_trim(args + word_len + 1);
    if (strcmp(args, "read") == 0)
        *access = AUTH_READ;
    else if (strcmp(args, "write") == 0)
        *access = AUTH_WRITE;
    else if (strcmp(args, "deny") == 0)
        *access = 0;
    else if (strcmp(args, "readwrite") != 0)
        return auth_file_fail(f, AUTH_ERR_INVALID,
                              "%s: unknown access '%s' (expected read, write, readwrite or deny)",
                              keyword, args);
    return AUTH_OK;
}

static struct acl_section *current_section(struct loader *ld, bool is_pattern)
{
    if (is_pattern)
        return &ld->acl->patterns;
    if (ld->user_index == SIZE_MAX)
        return &ld->acl->anon;
    return &ld->acl->users[ld->user_index];
}

static int do_rule(struct auth_file *f, struct loader *ld, const char *keyword, char *args)
{
    unsigned access = 0;
    char *filter = NULL; /* gcc -O2 cannot see parse_access_filter sets it on success */
    int rc = parse_access_filter(f, keyword, args, &access, &filter);
    if (rc != AUTH_OK)
        return rc;
    if (!is_valid_filter(filter))
        return auth_file_fail(f, AUTH_ERR_INVALID, "%s: invalid topic filter '%s'", keyword,
                              filter);
    bool is_pattern = keyword[0] == 'p';
    struct acl_rule r = {.filter = strdup(filter), .access = access};
    r.has_user_subst = is_pattern && strstr(filter, "%u") != NULL;
    struct acl_section *s = current_section(ld, is_pattern);
    if (r.filter == NULL || rules_append(access == 0 ? &s->deny : &s->allow, &r) != AUTH_OK) {
        free(r.filter);
        return auth_file_fail(f, AUTH_ERR_NOMEM, "out of memory");
    }
    return AUTH_OK;
}

/* Starts (or, as Mosquitto does, resumes) the section of user `name`.
 * The search is linear: it runs once per user line, at load time. */
static int do_user(struct auth_file *f, struct loader *ld, const char *name)
{
    struct auth_acl *acl = ld->acl;
    if (name[0] == '\0')
        return auth_file_fail(f, AUTH_ERR_INVALID, "user: missing username");
    for (size_t i = 0; i < acl->user_count; i++) {
        if (strcmp(acl->users[i].username, name) == 0) {
            ld->user_index = i;
            return AUTH_OK;
        }
    }
    if (acl->user_count == acl->user_cap) {
        size_t cap = acl->user_cap == 0 ? 8 : acl->user_cap * 2;
        struct acl_section *v = realloc(acl->users, cap * sizeof(*v));
        if (v == NULL)
            return auth_file_fail(f, AUTH_ERR_NOMEM, "out of memory");
        acl->users = v;
        acl->user_cap = cap;
    }
    struct acl_section s = {.username = strdup(name)};
    if (s.username == NULL)
        return auth_file_fail(f, AUTH_ERR_NOMEM, "out of memory");
    acl->users[acl->user_count] = s;
    ld->user_index = acl->user_count++;
    return AUTH_OK;
}

static int parse_line(struct auth_file *f, char *line, void *ctx)
{
    struct loader *ld = ctx;
    line = auth_trim(line);
    if (line[0] == '\0' || line[0] == '#')
        return AUTH_OK;
    size_t word_len = strcspn(line, " \t");
    char *args = line + word_len;
    if (*args != '\0')
        *args++ = '\0';
    args = auth_trim(args);
    if (strcmp(line, "user") == 0)
        return do_user(f, ld, args);
    if (strcmp(line, "topic") == 0 || strcmp(line, "pattern") == 0)
        return do_rule(f, ld, line, args);
    return auth_file_fail(f, AUTH_ERR_INVALID,
                          "unknown keyword '%s' (expected user, topic or pattern)", line);
}

static int section_cmp(const void *a, const void *b)
{
    const struct acl_section *x = a, *y = b;
    return strcmp(x->username, y->username);
}

void auth_acl_free(struct auth_acl *acl)
{
    if (acl == NULL)
        return;
    section_deinit(&acl->anon);
    section_deinit(&acl->patterns);
    for (size_t i = 0; i < acl->user_count; i++)
        section_deinit(&acl->users[i]);
    free(acl->users);
    free(acl);
}

int auth_acl_load(const char *path, struct auth_acl **out, char *err, size_t err_len)
{
    struct auth_file f = {.path = path, .err = err, .err_len = err_len};
    *out = NULL;
    struct auth_acl *acl = calloc(1, sizeof(*acl));
    if (acl == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        return AUTH_ERR_NOMEM;
    }
    struct loader ld = {acl, SIZE_MAX};
    int rc = auth_file_each_line(&f, parse_line, &ld);
    if (rc != AUTH_OK) {
        auth_acl_free(acl);
        return rc;
    }
    if (acl->user_count > 1)
        qsort(acl->users, acl->user_count, sizeof(acl->users[0]), section_cmp);
    *out = acl;
    return AUTH_OK;
}
