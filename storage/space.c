/*
 * space.c - how much the store can still take, so that a full store is a
 * designed state rather than a failed commit.
 *
 * Quotas before records: the session manager reserves an estimate of what a
 * decision will write (store_batch_reserve()) before it records anything, and
 * a reservation that does not fit is refused there - that client gets no ack,
 * and nobody else's commit fails because of it (knot checks journal-max-usage
 * per zone the same way). Reservations never use the last headroom bytes, so
 * a batch of deletes (subscribers' acks, session expiry), which reserves
 * nothing, can always commit and a full store drains instead of livelocking.
 *
 * The estimate: pages the map can still grow into (storage_max_size), bounded
 * by what the filesystem can still give the data file (statvfs), plus pages on
 * LMDB's freelist. It is refreshed after commits (cheaply, by subtracting what
 * the commit reserved, and exactly every REFRESH_COMMITS commits or when it
 * runs low). Estimates of LMDB's page use are conservative, and a commit that
 * still hits MDB_MAP_FULL or ENOSPC fails its batch cleanly (commit.c).
 *
 * Not for: growing the map (commit.c), or deciding what to refuse (session).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "store_internal.h"

/* Exact refresh at least this often, so space taken by others on the same
 * filesystem is noticed. */
#define REFRESH_COMMITS 256
/* Below this much estimated room every commit refreshes exactly. */
#define REFRESH_BELOW (64ull << 20)
/* Freelist records walked at most per refresh (each holds many pages). */
#define FREELIST_WALK_MAX 100000
/* What a record costs beyond its bytes: its leaf node header, and its share
 * of the pages a transaction copies on write on the way to it. */
#define RECORD_OVERHEAD 64u
/* Pages a write transaction copies on write whatever it holds: the leaf and
 * branch pages of each database it touches, the free list, the meta record. */
#define BATCH_OVERHEAD_PAGES 24u

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Pages on LMDB's freelist: each record of the free database is a list of
 * page numbers whose first word is its length. */
static uint64_t freelist_pages(MDB_txn *txn)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur) != 0)
        return 0;
    uint64_t pages = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (int i = 0; rc == 0 && i < FREELIST_WALK_MAX; i++) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof(n));
            pages += n;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return pages;
}

/* What the data file can still grow by: up to the map's maximum, as far as
 * the filesystem allows. */
static uint64_t growth_room(const struct store *s, uint64_t used_bytes)
{
    int fd;
    struct stat st;
    struct statvfs vfs;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0 || fstatvfs(fd, &vfs) != 0)
        return 0;
    uint64_t file = (uint64_t)st.st_size;
    uint64_t map_room = s->max_map_size > used_bytes ? s->max_map_size - used_bytes : 0;
    uint64_t in_file = file > used_bytes ? file - used_bytes : 0; /* written, not in use */
    uint64_t fs_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    return min_u64(map_room, in_file + fs_free);
}

int store_space_refresh(struct store *s)
{
    MDB_envinfo info;
    MDB_stat stat;
    int rc = mdb_env_info(s->env, &info);
    if (rc == 0)
        rc = mdb_env_stat(s->env, &stat);
    if (rc != 0)
        return store_err_from_mdb(rc);
    uint64_t page = stat.ms_psize;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * page;
    MDB_txn *txn;
    uint64_t free_pages = 0;
    if (store_read_begin(s, &txn) == 0) {
        free_pages = freelist_pages(txn);
        mdb_txn_abort(txn);
    }
    s->page_size = page;
    s->room_bytes = growth_room(s, used) + free_pages * page;
    s->commits_since_refresh = 0;
    return 0;
}

/* After a commit that wrote (up to) what its batch reserved. */
void store_space_after_commit(struct store *s, uint64_t reserved)
{
    s->reserved_bytes = s->reserved_bytes > reserved ? s->reserved_bytes - reserved : 0;
    s->room_bytes = s->room_bytes > reserved ? s->room_bytes - reserved : 0;
    if (++s->commits_since_refresh >= REFRESH_COMMITS || s->room_bytes < REFRESH_BELOW)
        store_space_refresh(s);
}

/* After a batch that wrote nothing (failed or discarded). */
void store_space_release(struct store *s, uint64_t reserved)
{
    s->reserved_bytes = s->reserved_bytes > reserved ? s->reserved_bytes - reserved : 0;
}

uint64_t store_space_headroom(const struct store *s)
{
    uint64_t floor = 256u << 10;
    uint64_t share = s->max_map_size / 32;
    return share > floor ? share : floor;
}

/* A record of this many bytes, as LMDB pages it: values past half a page go
 * to overflow pages of their own (rounded up, plus one for the header). */
static uint64_t record_cost(const struct store *s, uint64_t bytes)
{
    uint64_t page = s->page_size ? s->page_size : 4096;
    uint64_t cost = bytes + RECORD_OVERHEAD;
    if (bytes > page / 2)
        cost = (bytes / page + 2) * page;
    return cost;
}

int store_batch_reserve(struct store_batch *b, size_t bytes, size_t records)
{
    struct store *s = b->store;
    uint64_t cost = record_cost(s, bytes) + (uint64_t)records * RECORD_OVERHEAD * 2;
    if (b->reserved_bytes == 0)
        cost += BATCH_OVERHEAD_PAGES * (s->page_size ? s->page_size : 4096);
    uint64_t limit =
        s->room_bytes > store_space_headroom(s) ? s->room_bytes - store_space_headroom(s) : 0;
    if (s->reserved_bytes + cost > limit)
        return STORE_ERR_FULL;
    s->reserved_bytes += cost;
    b->reserved_bytes += cost;
    return 0;
}
