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

int solctl_check(struct store *store, const struct solctl_opts *opts)
{
    int n = store_check(store, print_problem, (void *)opts);
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
    printf("{\"type\":\"store\",\"schema_version\":%u,\"store_id\":\"", st->schema_version);
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
    printf("store %s: schema %u, id ", dir, st->schema_version);
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
