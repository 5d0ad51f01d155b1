/*
 * check.c - `solctl check` (the store's invariants, via store_check) and
 * `solctl stats` (entry counts and sizes per database, map size and use).
 * Not for: dumping records (dump.c).
 */
#include "solctl.h"

#include <string.h>

static void print_problem(void *arg, const char *problem)
{
    const struct solctl_opts *opts = arg;
    if (opts->json) {
        fputs("{\"type\":\"problem\",\"text\":", stdout);
        solctl_json_string(stdout, (struct store_bytes){(const uint8_t *)problem, strlen(problem)});
        fputs("}\n", stdout);
    } else {
        printf("problem: %s\n", problem);
    }
}

/* ---- MQTT 5 content, which storage keeps as bytes ---- */

struct mqtt5_check {
    const struct solctl_opts *opts;
    int problems;
};

static void mqtt5_problem(struct mqtt5_check *c, const char *what, struct store_bytes name)
{
    char line[400];
    int n = snprintf(line, sizeof(line), "%s '", what);
    for (size_t i = 0; i < name.len && n < (int)sizeof(line) - 8; i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      name.data[i] >= 0x20 && name.data[i] < 0x7f ? "%c" : "\\x%02x", name.data[i]);
    snprintf(line + n, sizeof(line) - (size_t)n, "'");
    print_problem((void *)c->opts, line);
    c->problems++;
}

/* A session's will properties parse; an offline session with interval 0
 * (which ends with its connection) or a waiting will without a delay does
 * not exist. */
static int check_session(void *arg, const struct store_session_info *info)
{
    struct mqtt5_check *c = arg;
    const struct store_session *s = &info->session;
    if (s->has_will && !solctl_properties_valid(s->will_props))
        mqtt5_problem(c, "sessions: will properties do not parse for", info->client_id);
    if (!s->is_online && s->expiry_s == 0)
        mqtt5_problem(c, "sessions: an offline session with expiry 0:", info->client_id);
    if (s->will_at_s != 0 && s->will_delay_s == 0)
        mqtt5_problem(c, "sessions: a waiting will without a delay:", info->client_id);
    return 0;
}

static int check_message(void *arg, uint64_t id, const struct store_message *m, uint32_t refs)
{
    (void)refs;
    struct mqtt5_check *c = arg;
    char what[80];
    snprintf(what, sizeof(what), "messages: properties of message %llu do not parse, topic",
             (unsigned long long)id);
    if (!solctl_properties_valid(m->props))
        mqtt5_problem(c, what, m->topic);
    return 0;
}

static int check_retained(void *arg, const struct store_retained *r)
{
    struct mqtt5_check *c = arg;
    if (!solctl_properties_valid(r->props))
        mqtt5_problem(c, "retained: properties do not parse for", r->topic);
    return 0;
}

/* What store_check() cannot judge: the MQTT 5 property blocks (storage
 * never parses them) and the session fields' MQTT meaning. Returns the
 * number of problems, or a negative store code. */
static int check_mqtt5(struct store *store, const struct solctl_opts *opts)
{
    struct mqtt5_check c = {.opts = opts};
    int rc = store_sessions_foreach(store, check_session, &c);
    if (rc == 0)
        rc = store_messages_foreach(store, false, check_message, &c);
    if (rc == 0)
        rc = store_retained_index_foreach(store, check_retained, &c);
    return rc < 0 ? rc : c.problems;
}

int solctl_check(struct store *store, const struct solctl_opts *opts)
{
    int n = store_check(store, print_problem, (void *)opts);
    int more = n >= 0 ? check_mqtt5(store, opts) : 0;
    if (more < 0)
        n = more;
    else
        n += more;
    if (n < 0) {
        fprintf(stderr, "solctl: %s: check failed: %s\n", opts->data_dir, store_strerror(n));
        return SOLCTL_EXIT_ERROR;
    }
    if (opts->json)
        printf("{\"type\":\"check\",\"problems\":%d,\"ok\":%s}\n", n, n == 0 ? "true" : "false");
    else if (n == 0)
        printf("%s: ok, no problems found\n", opts->data_dir);
    else
        printf("%s: %d problem%s found\n", opts->data_dir, n, n == 1 ? "" : "s");
    return n == 0 ? SOLCTL_EXIT_OK : SOLCTL_EXIT_PROBLEMS;
}

static uint64_t db_bytes(const struct store_db_stats *db, uint32_t page_size)
{
    return (db->branch_pages + db->leaf_pages + db->overflow_pages) * (uint64_t)page_size;
}

static void stats_json(const struct store_stats *st)
{
    printf("{\"type\":\"store\",\"schema_version\":%u,\"upgraded_from\":%u,\"store_id\":\"",
           st->schema_version, st->upgraded_from);
    for (int i = 0; i < 16; i++)
        printf("%02x", st->store_id[i]);
    printf("\",\"created_at\":%llu,\"message_id_hwm\":%llu,\"page_size\":%u,\"map_size\":%llu,"
           "\"map_used\":%llu,\"max_readers\":%u,\"readers_used\":%u}\n",
           (unsigned long long)st->created_at_s, (unsigned long long)st->message_id_hwm,
           st->page_size, (unsigned long long)st->map_size, (unsigned long long)st->map_used,
           st->max_readers, st->readers_used);
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        const struct store_db_stats *db = &st->dbs[i];
        printf(
            "{\"type\":\"db\",\"name\":\"%s\",\"entries\":%llu,\"depth\":%u,"
            "\"branch_pages\":%llu,\"leaf_pages\":%llu,\"overflow_pages\":%llu,\"bytes\":%llu}\n",
            db->name, (unsigned long long)db->entries, db->depth,
            (unsigned long long)db->branch_pages, (unsigned long long)db->leaf_pages,
            (unsigned long long)db->overflow_pages,
            (unsigned long long)db_bytes(db, st->page_size));
    }
}

static void stats_human(const char *dir, const struct store_stats *st)
{
    char created[40];
    printf("store %s: schema %u", dir, st->schema_version);
    if (st->upgraded_from != 0)
        printf(" (upgraded from %u)", st->upgraded_from);
    printf(", id ");
    for (int i = 0; i < 16; i++)
        printf("%02x", st->store_id[i]);
    printf(", created %s\n", solctl_time(created, sizeof(created), st->created_at_s));
    printf("map: %llu bytes used of %llu mapped (%.1f%%), page size %u\n",
           (unsigned long long)st->map_used, (unsigned long long)st->map_size,
           st->map_size ? 100.0 * (double)st->map_used / (double)st->map_size : 0.0, st->page_size);
    printf("readers: %u slots used of %u; message id high-water: %llu\n", st->readers_used,
           st->max_readers, (unsigned long long)st->message_id_hwm);
    printf("%-13s %12s %6s %10s %10s %10s %14s\n", "database", "entries", "depth", "branch", "leaf",
           "overflow", "bytes");
    for (int i = 0; i < STORE_DB_COUNT; i++) {
        const struct store_db_stats *db = &st->dbs[i];
        printf("%-13s %12llu %6u %10llu %10llu %10llu %14llu\n", db->name,
               (unsigned long long)db->entries, db->depth, (unsigned long long)db->branch_pages,
               (unsigned long long)db->leaf_pages, (unsigned long long)db->overflow_pages,
               (unsigned long long)db_bytes(db, st->page_size));
    }
}

int solctl_stats(struct store *store, const struct solctl_opts *opts)
{
    struct store_stats st;
    int rc = store_stats(store, &st);
    if (rc != 0) {
        fprintf(stderr, "solctl: %s: stats: %s\n", opts->data_dir, store_strerror(rc));
        return SOLCTL_EXIT_ERROR;
    }
    if (opts->json)
        stats_json(&st);
    else
        stats_human(opts->data_dir, &st);
    return fflush(stdout) == 0 ? SOLCTL_EXIT_OK : SOLCTL_EXIT_ERROR;
}
