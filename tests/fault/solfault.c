/*
 * solfault.c - Sol's fault-injection shim: an LD_PRELOAD library that sits
 * between a process and the system calls through which a store reaches the
 * disk, and can (1) simulate a power cut, (2) fail writes with ENOSPC, and
 * (3) fail syncs with EIO. It is the one fault-injection tool of the project:
 * the power-cut test (tests/integration/test_power_cut.py) and its smoke test
 * (tests/integration/test_fault_shim.py) use it, and so should later tests of
 * the broker's reaction to I/O errors.
 *
 * Not for: production, or modelling more than one process writing a file.
 *
 * ---- The model ------------------------------------------------------------
 * For every tracked file (see SOL_FAULT_MATCH) the shim remembers each write
 * since the file's last successful fsync/fdatasync (syncfs, sync too) together
 * with the bytes it overwrote. A write through a descriptor opened with
 * O_DSYNC/O_SYNC (LMDB's meta page fd), or pwritev2 with RWF_DSYNC, is durable
 * once it returns. Synced data is never reverted.
 *
 * A power cut picks which unsynced writes "reached the platter", puts the old
 * bytes back for the others (in the page cache: the next process to open the
 * file sees exactly what a machine that lost power at that instant could have
 * left), shortens the file if every write past the synced size was lost, and
 * then SIGKILLs the process. Sector atomicity: each 512-byte (or 4 KiB) sector
 * of a write is all old or all new. A file created by this process whose
 * directory was not fsynced afterwards may lose its directory entry (it is
 * unlinked); a directory made by mkdir whose parent was not fsynced may vanish
 * with its contents. Revert modes (SOL_FAULT_CUT_MODE):
 *   none     keep every unsynced write (what kill -9 leaves)
 *   all      revert every unsynced write, lose every unsynced directory entry
 *   random   revert a random subset of the unsynced writes (coin per write)
 *            and of the unsynced directory entries
 *   sectors  revert a random half of the unsynced sectors (coin per sector of
 *            every unsynced write): no ordering at all between writes
 *   torn     tear one random unsynced write (coin per sector), keep the rest
 *   prefix   keep the writes in issue order up to a random point, revert the
 *            rest (a disk that writes in order)
 *   mix      (default) one of the above per cut, chosen by the seed
 *
 * ---- Environment ------------------------------------------------------------
 *   SOL_FAULT_MATCH=a,b      basenames of the files to track (default data.mdb)
 *   SOL_FAULT_SEED=N         seeds every random choice (default 1)
 *   SOL_FAULT_CUT_AT=N       power cut at the N-th event (1-based); an event is
 *                            a write-family call or a sync of a tracked file. A
 *                            write happens, then the cut (it may be torn); a
 *                            sync is cut before it runs.
 *   SOL_FAULT_CUT_AFTER_MS=T power cut at a random moment: T ms after the shim
 *                            loaded, the cut lands on one of the next 0..3
 *                            events, or after SOL_FAULT_CUT_WINDOW_MS (default
 *                            50) with no event, between events.
 *   SOL_FAULT_CUT_MODE=M     revert mode (above); default mix
 *   SOL_FAULT_SECTOR=B       sector size for tearing: 512 or 4096 (default: one
 *                            of them per cut, chosen by the seed)
 *   SOL_FAULT_REPORT=PATH    append one JSON line per cut to PATH
 *   SOL_FAULT_ENOSPC_AFTER_BYTES=N
 *                            once N bytes were written to tracked files, every
 *                            further write to them that reaches past the file's
 *                            end fails with ENOSPC (nothing written), as on ext4,
 *                            where overwriting allocated blocks (LMDB's meta
 *                            pages, reused pages) needs no space - while SOL_FAULT_ENOSPC_FILE exists, if
 *                            that variable names a file, and until SIGUSR2
 *                            toggles the injection off (SIGUSR2 again turns it
 *                            back on). The handler is installed only when this
 *                            variable is set.
 *   SOL_FAULT_ENOSPC_FILE=PATH  the control file described above
 *   SOL_FAULT_EIO_AT_SYNC=K  the K-th fsync/fdatasync of a tracked file fails
 *                            with EIO without syncing (its writes stay unsynced)
 *   SOL_FAULT_EIO_SYNC_COUNT=C  fail C syncs from the K-th on (default 1; 0 =
 *                            every sync from the K-th on)
 *   SOL_FAULT_VERBOSE=1      one line on stderr at start-up
 * Every line the shim prints starts with "solfault:". A cut prints a one-line
 * summary on stderr (the broker's log) before the SIGKILL.
 *
 * ---- Limits -------------------------------------------------------------------
 * Not modelled (a warning "solfault: ... not modelled" is printed, and the cut
 * report says "modelled":false): writable shared mappings of a tracked file
 * (MDB_WRITEMAP: their msync is not journaled), ftruncate and rename of a
 * tracked file. LMDB 0.9 without MDB_WRITEMAP uses none of them. The journal of
 * unsynced old bytes is capped at SOL_FAULT_MAX_JOURNAL_MB (default 1024).
 * With an ASan binary, preload libasan first: LD_PRELOAD="libasan.so.N:libsolfault.so".
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 8
#define MAX_DIRS  32
#define MAX_MATCH 8
#define MAX_IOV   1024
#define MIB       (1024ull * 1024ull)

/* ---- real functions ----------------------------------------------------- */

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);
static int (*real_msync)(void *, size_t, int);
static int (*real_ftruncate)(int, off_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

#define RESOLVE(name)                                                                              \
    do {                                                                                           \
        if (real_##name == NULL)                                                                   \
            *(void **)&real_##name = dlsym(RTLD_NEXT, #name);                                      \
    } while (0)

static void resolve_all(void)
{
    RESOLVE(open);
    RESOLVE(openat);
    RESOLVE(close);
    RESOLVE(write);
    RESOLVE(writev);
    RESOLVE(pwrite);
    RESOLVE(pwritev);
    RESOLVE(pwritev2);
    RESOLVE(pread);
    RESOLVE(fsync);
    RESOLVE(fdatasync);
    RESOLVE(sync);
    RESOLVE(syncfs);
    RESOLVE(msync);
    RESOLVE(ftruncate);
    RESOLVE(mmap);
    RESOLVE(mkdir);
    RESOLVE(mkdirat);
    RESOLVE(rename);
    RESOLVE(renameat);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
}

/* ---- state ---------------------------------------------------------------- */

/* One unsynced write: [off, off + len) with the old_len bytes that existed
 * there before (the rest of the range was past the end of the file). */
struct wrec {
    uint64_t off, len, old_len;
    bool is_durable; /* O_DSYNC write that returned: never reverted */
    uint8_t *old;
};

struct tfile {
    dev_t dev;
    ino_t ino;
    char path[PATH_MAX];
    int own_fd; /* the shim's own O_RDWR descriptor: reads old bytes, writes reverts */
    uint64_t size, synced_size;
    struct wrec *recs;
    size_t nrec, cap;
    bool is_created;       /* created by this process */
    bool is_dirent_synced; /* its directory was fsynced after the creation */
};

struct tdir {
    char path[PATH_MAX]; /* made by mkdir in this process */
    bool is_synced;      /* its parent was fsynced after the mkdir */
};

enum fd_kind { FD_NONE = 0, FD_FILE, FD_DIR };

struct fdent {
    uint8_t kind;
    bool is_dsync;
    int index;  /* FD_FILE: index into files */
    char *path; /* FD_DIR: the directory (malloc'd) */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static struct {
    char match[MAX_MATCH][NAME_MAX + 1];
    int nmatch;
    uint64_t rng;
    long long cut_at, events;
    long long cut_after_ms, cut_window_ms;
    char mode[16];
    int sector; /* 0: pick per cut */
    char report[PATH_MAX];
    long long enospc_after;
    char enospc_file[PATH_MAX];
    long long eio_at_sync, eio_count, syncs;
    uint64_t written, journal, journal_max;
    bool is_armed, is_cutting, is_unmodelled, is_journal_full;
    int armed_skip;
    struct timespec t0;
    struct tfile files[MAX_FILES];
    int nfiles;
    struct tdir dirs[MAX_DIRS];
    int ndirs;
    struct fdent *fds;
    int nfds;
} S;

enum cut_mode { CUT_NONE, CUT_ALL, CUT_RANDOM, CUT_SECTORS, CUT_TORN, CUT_PREFIX };
static const char *const mode_names[] = {"none", "all", "random", "sectors", "torn", "prefix"};

static volatile sig_atomic_t enospc_off; /* toggled by SIGUSR2 */

/* ---- small helpers ---------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr through the real write (never journaled). */
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (real_write != NULL && real_write(2, line, (size_t)n) < 0)
        return;
}

static uint64_t next_rand(void)
{
    /* splitmix64: good enough, and reproducible from the seed */
    uint64_t z = (S.rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool coin(void)
{
    return next_rand() & 1;
}

static long long env_ll(const char *name, long long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == 0)
        return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != 0) {
        say("solfault: %s=%s is not a number; using %lld", name, v, dflt);
        return dflt;
    }
    return x;
}

static void env_str(const char *name, char *out, size_t len, const char *dflt)
{
    const char *v = getenv(name);
    snprintf(out, len, "%s", v != NULL && *v != 0 ? v : dflt);
}

static long long elapsed_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - S.t0.tv_sec) * 1000 + (now.tv_nsec - S.t0.tv_nsec) / 1000000;
}

static void parse_match(void)
{
    char buf[MAX_MATCH * (NAME_MAX + 1)];
    env_str("SOL_FAULT_MATCH", buf, sizeof(buf), "data.mdb");
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL && S.nmatch < MAX_MATCH;
         t = strtok_r(NULL, ",", &save))
        snprintf(S.match[S.nmatch++], NAME_MAX + 1, "%s", t);
}

static void on_sigusr2(int sig)
{
    (void)sig;
    enospc_off = !enospc_off;
}

static void *cut_timer(void *arg);

static void init(void)
{
    resolve_all();
    clock_gettime(CLOCK_MONOTONIC, &S.t0);
    parse_match();
    S.rng = (uint64_t)env_ll("SOL_FAULT_SEED", 1) * 0x2545F4914F6CDD1Dull + 1;
    S.cut_at = env_ll("SOL_FAULT_CUT_AT", 0);
    S.cut_after_ms = env_ll("SOL_FAULT_CUT_AFTER_MS", -1);
    S.cut_window_ms = env_ll("SOL_FAULT_CUT_WINDOW_MS", 50);
    env_str("SOL_FAULT_CUT_MODE", S.mode, sizeof(S.mode), "mix");
    S.sector = (int)env_ll("SOL_FAULT_SECTOR", 0);
    if (S.sector != 0 && S.sector != 512 && S.sector != 4096) {
        say("solfault: SOL_FAULT_SECTOR must be 512 or 4096; choosing per cut");
        S.sector = 0;
    }
    env_str("SOL_FAULT_REPORT", S.report, sizeof(S.report), "");
    S.enospc_after = env_ll("SOL_FAULT_ENOSPC_AFTER_BYTES", -1);
    env_str("SOL_FAULT_ENOSPC_FILE", S.enospc_file, sizeof(S.enospc_file), "");
    S.eio_at_sync = env_ll("SOL_FAULT_EIO_AT_SYNC", 0);
    S.eio_count = env_ll("SOL_FAULT_EIO_SYNC_COUNT", 1);
    S.journal_max = (uint64_t)env_ll("SOL_FAULT_MAX_JOURNAL_MB", 1024) * MIB;
    if (S.enospc_after >= 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigusr2;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR2, &sa, NULL) != 0)
            say("solfault: cannot install the SIGUSR2 handler: %s", strerror(errno));
    }
    if (S.cut_after_ms >= 0) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, cut_timer, NULL) != 0)
            say("solfault: cannot start the cut timer thread");
        pthread_attr_destroy(&attr);
    }
    bool is_known = strcmp(S.mode, "mix") == 0;
    for (int m = 0; m < 6; m++)
        is_known = is_known || strcmp(S.mode, mode_names[m]) == 0;
    if (!is_known)
        say("solfault: unknown SOL_FAULT_CUT_MODE %s; using mix", S.mode);
    if (env_ll("SOL_FAULT_VERBOSE", 0))
        say("solfault: pid %d tracking %s%s, seed %lld, cut_at %lld, cut_after_ms %lld, mode %s",
            (int)getpid(), S.match[0], S.nmatch > 1 ? ",..." : "", env_ll("SOL_FAULT_SEED", 1),
            S.cut_at, S.cut_after_ms, S.mode);
}

static void ensure_init(void)
{
    pthread_once(&once, init);
}

__attribute__((constructor)) static void solfault_ctor(void)
{
    ensure_init();
}

/* ---- descriptors ------------------------------------------------------------ */

static struct fdent *fd_get(int fd)
{
    if (fd < 0 || fd >= S.nfds)
        return NULL;
    return S.fds[fd].kind == FD_NONE ? NULL : &S.fds[fd];
}

static struct fdent *fd_slot(int fd)
{
    if (fd < 0)
        return NULL;
    if (fd >= S.nfds) {
        int n = fd + 64;
        struct fdent *bigger = realloc(S.fds, (size_t)n * sizeof(*bigger));
        if (bigger == NULL) {
            say("solfault: out of memory tracking descriptor %d", fd);
            return NULL;
        }
        memset(bigger + S.nfds, 0, (size_t)(n - S.nfds) * sizeof(*bigger));
        S.fds = bigger;
        S.nfds = n;
    }
    return &S.fds[fd];
}

static void fd_forget(int fd)
{
    if (fd < 0 || fd >= S.nfds)
        return;
    free(S.fds[fd].path);
    memset(&S.fds[fd], 0, sizeof(S.fds[fd]));
}

static bool name_matches(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    for (int i = 0; i < S.nmatch; i++)
        if (strcmp(base, S.match[i]) == 0)
            return true;
    return false;
}

static void parent_of(const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == out)
        slash[1] = 0;
    else if (slash != NULL)
        *slash = 0;
    else
        snprintf(out, len, ".");
}

static int file_index(const struct stat *sb, const char *real, bool created)
{
    for (int i = 0; i < S.nfiles; i++)
        if (S.files[i].dev == sb->st_dev && S.files[i].ino == sb->st_ino)
            return i;
    if (S.nfiles == MAX_FILES) {
        say("solfault: more than %d tracked files; %s is not tracked", MAX_FILES, real);
        return -1;
    }
    int own = real_open(real, O_RDWR | O_CLOEXEC);
    if (own < 0) {
        say("solfault: cannot open %s for reverts: %s; not tracked", real, strerror(errno));
        return -1;
    }
    struct tfile *f = &S.files[S.nfiles];
    memset(f, 0, sizeof(*f));
    f->dev = sb->st_dev;
    f->ino = sb->st_ino;
    snprintf(f->path, sizeof(f->path), "%s", real);
    f->own_fd = own;
    f->size = f->synced_size = (uint64_t)sb->st_size;
    f->is_created = created;
    return S.nfiles++;
}

/* Records a descriptor the real open just returned. */
static void track_open(int fd, const char *path, int flags, bool created)
{
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0)
        return;
    char real[PATH_MAX];
    if (realpath(path, real) == NULL)
        return;
    pthread_mutex_lock(&lock);
    struct fdent *e = NULL;
    if (S_ISDIR(sb.st_mode)) {
        e = fd_slot(fd);
        if (e != NULL) {
            free(e->path);
            *e = (struct fdent){.kind = FD_DIR, .path = strdup(real)};
            if (e->path == NULL)
                e->kind = FD_NONE;
        }
    } else if (S_ISREG(sb.st_mode) && name_matches(real)) {
        int idx = file_index(&sb, real, created);
        e = idx >= 0 ? fd_slot(fd) : NULL;
        if (e != NULL) {
            free(e->path);
            *e = (struct fdent){
                .kind = FD_FILE, .index = idx, .is_dsync = (flags & (O_DSYNC | O_SYNC)) != 0};
        }
    }
    pthread_mutex_unlock(&lock);
}

static bool exists(int dirfd, const char *path)
{
    struct stat sb;
    return fstatat(dirfd, path, &sb, 0) == 0;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode)
{
    ensure_init();
    bool was_there = (flags & O_CREAT) ? exists(dirfd, path) : true;
    int fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0) {
        if (dirfd == AT_FDCWD || path[0] == '/') {
            track_open(fd, path, flags, !was_there);
        } else {
            char full[PATH_MAX * 2];
            snprintf(full, sizeof(full), "/proc/self/fd/%d/%s", dirfd, path);
            track_open(fd, full, flags, !was_there);
        }
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int close(int fd)
{
    ensure_init();
    pthread_mutex_lock(&lock);
    fd_forget(fd);
    pthread_mutex_unlock(&lock);
    return real_close(fd);
}

static int dup_entry(int oldfd, int newfd)
{
    if (newfd < 0 || newfd == oldfd)
        return newfd;
    pthread_mutex_lock(&lock);
    fd_forget(newfd);
    struct fdent *old = fd_get(oldfd);
    if (old != NULL) {
        struct fdent copy = *old;
        if (copy.path != NULL)
            copy.path = strdup(copy.path);
        struct fdent *e = fd_slot(newfd);
        if (e != NULL && (copy.kind != FD_DIR || copy.path != NULL))
            *e = copy;
        else
            free(copy.path);
    }
    pthread_mutex_unlock(&lock);
    return newfd;
}

int dup(int fd)
{
    ensure_init();
    return dup_entry(fd, real_dup(fd));
}

int dup2(int fd, int newfd)
{
    ensure_init();
    return dup_entry(fd, real_dup2(fd, newfd));
}

int dup3(int fd, int newfd, int flags)
{
    ensure_init();
    return dup_entry(fd, real_dup3(fd, newfd, flags));
}

/* ---- directories ------------------------------------------------------------ */

static void track_mkdir(int dirfd, const char *path)
{
    char real[PATH_MAX], full[PATH_MAX * 2];
    if (dirfd != AT_FDCWD && path[0] != '/') {
        snprintf(full, sizeof(full), "/proc/self/fd/%d/%s", dirfd, path);
        path = full;
    }
    if (realpath(path, real) == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (S.ndirs < MAX_DIRS) {
        snprintf(S.dirs[S.ndirs].path, PATH_MAX, "%s", real);
        S.dirs[S.ndirs++].is_synced = false;
    }
    pthread_mutex_unlock(&lock);
}

int mkdir(const char *path, mode_t mode)
{
    ensure_init();
    int rc = real_mkdir(path, mode);
    if (rc == 0)
        track_mkdir(AT_FDCWD, path);
    return rc;
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    ensure_init();
    int rc = real_mkdirat(dirfd, path, mode);
    if (rc == 0)
        track_mkdir(dirfd, path);
    return rc;
}

/* fsync of a directory makes the entries in it durable. */
static void dir_synced(const char *dir)
{
    char parent[PATH_MAX];
    for (int i = 0; i < S.nfiles; i++) {
        parent_of(S.files[i].path, parent, sizeof(parent));
        if (strcmp(parent, dir) == 0)
            S.files[i].is_dirent_synced = true;
    }
    for (int i = 0; i < S.ndirs; i++) {
        parent_of(S.dirs[i].path, parent, sizeof(parent));
        if (strcmp(parent, dir) == 0)
            S.dirs[i].is_synced = true;
    }
}

static void warn_unmodelled(const char *what, const char *path)
{
    S.is_unmodelled = true;
    say("solfault: %s of tracked file %s: not modelled (a cut now is not exact)", what, path);
}

int rename(const char *from, const char *to)
{
    ensure_init();
    int rc = real_rename(from, to);
    if (rc == 0 && (name_matches(from) || name_matches(to))) {
        pthread_mutex_lock(&lock);
        warn_unmodelled("rename", to);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

int renameat(int fromfd, const char *from, int tofd, const char *to)
{
    ensure_init();
    int rc = real_renameat(fromfd, from, tofd, to);
    if (rc == 0 && (name_matches(from) || name_matches(to))) {
        pthread_mutex_lock(&lock);
        warn_unmodelled("rename", to);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

/* ---- the power cut ------------------------------------------------------------ */

/* Intervals [a, b) of a file whose final content is decided (a kept write or
 * a durable one covers them); sorted, disjoint. */
struct ivset {
    uint64_t (*iv)[2];
    size_t n, cap;
};

/* Index of the first interval that ends after x. */
static size_t iv_first_after(const struct ivset *s, uint64_t x)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->iv[mid][1] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool iv_add(struct ivset *s, uint64_t a, uint64_t b)
{
    size_t i = iv_first_after(s, a > 0 ? a - 1 : 0);
    /* merge every interval that touches [a, b) */
    size_t j = i;
    while (j < s->n && s->iv[j][0] <= b) {
        if (s->iv[j][0] < a)
            a = s->iv[j][0];
        if (s->iv[j][1] > b)
            b = s->iv[j][1];
        j++;
    }
    if (j == i) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            void *bigger = realloc(s->iv, cap * sizeof(*s->iv));
            if (bigger == NULL)
                return false;
            s->iv = bigger;
            s->cap = cap;
        }
        memmove(&s->iv[i + 1], &s->iv[i], (s->n - i) * sizeof(*s->iv));
        s->n++;
    } else if (j > i + 1) {
        memmove(&s->iv[i + 1], &s->iv[j], (s->n - j) * sizeof(*s->iv));
        s->n -= j - i - 1;
    }
    s->iv[i][0] = a;
    s->iv[i][1] = b;
    return true;
}

struct cut_stats {
    uint64_t unsynced, reverted, torn, kept, bytes_reverted, dirents_lost;
    bool is_ok;
};

static void write_all(int fd, const uint8_t *p, uint64_t len, uint64_t off, struct cut_stats *st)
{
    while (len > 0) {
        ssize_t n = real_pwrite(fd, p, len, (off_t)off);
        if (n <= 0) {
            say("solfault: revert write failed: %s", strerror(errno));
            st->is_ok = false;
            return;
        }
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
}

/* Puts back the old bytes of [a, b) of record r (zeros past the old end). */
static void restore(const struct tfile *f, const struct wrec *r, uint64_t a, uint64_t b,
                    struct cut_stats *st)
{
    static const uint8_t zeros[4096];
    uint64_t old_end = r->off + r->old_len;
    if (a < old_end) {
        uint64_t e = b < old_end ? b : old_end;
        write_all(f->own_fd, r->old + (a - r->off), e - a, a, st);
        a = e;
    }
    for (; a < b;) {
        uint64_t n = b - a > sizeof(zeros) ? sizeof(zeros) : b - a;
        write_all(f->own_fd, zeros, n, a, st);
        a += n;
    }
}

/* Applies keep/revert to one piece [a, b) of record r: only the parts no
 * later kept write decided yet. */
static void apply_piece(const struct tfile *f, const struct wrec *r, struct ivset *done, uint64_t a,
                        uint64_t b, bool keep, struct cut_stats *st)
{
    size_t i = iv_first_after(done, a);
    uint64_t x = a;
    while (x < b) {
        uint64_t gap_end = b;
        if (i < done->n && done->iv[i][0] <= x) {
            x = done->iv[i][1]; /* decided by a later write: leave it */
            i++;
            continue;
        }
        if (i < done->n && done->iv[i][0] < b)
            gap_end = done->iv[i][0];
        if (keep) {
            if (!iv_add(done, x, gap_end))
                st->is_ok = false;
            i = iv_first_after(done, gap_end);
        } else {
            restore(f, r, x, gap_end, st);
            st->bytes_reverted += gap_end - x;
        }
        x = gap_end;
    }
}

static enum cut_mode pick_mode(void)
{
    for (int m = CUT_NONE; m <= CUT_PREFIX; m++)
        if (strcmp(S.mode, mode_names[m]) == 0)
            return (enum cut_mode)m;
    return (enum cut_mode)(next_rand() % 6); /* mix (or unknown: say so below) */
}

/* Per-record decision for the modes that decide whole writes. */
static bool keep_record(enum cut_mode mode, size_t i, size_t prefix_end)
{
    switch (mode) {
    case CUT_NONE:
        return true;
    case CUT_ALL:
        return false;
    case CUT_RANDOM:
        return coin();
    case CUT_PREFIX:
        return i < prefix_end;
    default:
        return true;
    }
}

static void revert_file(struct tfile *f, enum cut_mode mode, uint64_t sector, struct cut_stats *st)
{
    struct ivset done = {0};
    size_t prefix_end = f->nrec ? (size_t)(next_rand() % (f->nrec + 1)) : 0;
    size_t victim = f->nrec ? (size_t)(next_rand() % f->nrec) : 0;
    for (size_t k = f->nrec; k-- > 0;) {
        const struct wrec *r = &f->recs[k];
        st->unsynced++;
        bool per_sector =
            !r->is_durable && (mode == CUT_SECTORS || (mode == CUT_TORN && k == victim));
        bool keep = r->is_durable || keep_record(mode, k, prefix_end);
        if (!per_sector) {
            apply_piece(f, r, &done, r->off, r->off + r->len, keep, st);
            if (keep)
                st->kept++;
            else
                st->reverted++;
            continue;
        }
        st->torn++;
        for (uint64_t a = r->off; a < r->off + r->len;) {
            uint64_t b = (a / sector + 1) * sector;
            if (b > r->off + r->len)
                b = r->off + r->len;
            apply_piece(f, r, &done, a, b, coin(), st);
            a = b;
        }
    }
    uint64_t keep_end = done.n ? done.iv[done.n - 1][1] : 0;
    uint64_t new_size = keep_end > f->synced_size ? keep_end : f->synced_size;
    if (new_size < f->size && real_ftruncate(f->own_fd, (off_t)new_size) != 0) {
        say("solfault: truncating %s: %s", f->path, strerror(errno));
        st->is_ok = false;
    }
    free(done.iv);
}

static void remove_dir_contents(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[PATH_MAX * 2];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Unsynced directory entries: lost in mode all, by coin in random/sectors/prefix. */
static void lose_dirents(enum cut_mode mode, struct cut_stats *st)
{
    if (mode == CUT_NONE || mode == CUT_TORN)
        return;
    for (int i = 0; i < S.nfiles; i++) {
        struct tfile *f = &S.files[i];
        if (f->is_created && !f->is_dirent_synced && (mode == CUT_ALL || coin())) {
            unlink(f->path);
            st->dirents_lost++;
        }
    }
    char parent[PATH_MAX];
    for (int i = 0; i < S.ndirs; i++) {
        bool holds_tracked = false;
        for (int j = 0; j < S.nfiles; j++) {
            parent_of(S.files[j].path, parent, sizeof(parent));
            holds_tracked = holds_tracked || strcmp(parent, S.dirs[i].path) == 0;
        }
        if (holds_tracked && !S.dirs[i].is_synced && (mode == CUT_ALL || coin())) {
            remove_dir_contents(S.dirs[i].path);
            rmdir(S.dirs[i].path);
            st->dirents_lost++;
        }
    }
}

static void report(const char *why, enum cut_mode mode, uint64_t sector, const struct cut_stats *st)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    char line[1024];
    int n = snprintf(line, sizeof(line),
                     "{\"pid\":%d,\"at\":\"%s\",\"event\":%lld,\"t_ms\":%lld,\"wall\":%.6f,"
                     "\"mode\":\"%s\",\"sector\":%llu,\"unsynced\":%llu,\"reverted\":%llu,"
                     "\"torn\":%llu,\"kept\":%llu,\"bytes_reverted\":%llu,\"dirents_lost\":%llu,"
                     "\"modelled\":%s,\"ok\":%s}\n",
                     (int)getpid(), why, S.events, elapsed_ms(),
                     (double)wall.tv_sec + (double)wall.tv_nsec / 1e9, mode_names[mode],
                     (unsigned long long)sector, (unsigned long long)st->unsynced,
                     (unsigned long long)st->reverted, (unsigned long long)st->torn,
                     (unsigned long long)st->kept, (unsigned long long)st->bytes_reverted,
                     (unsigned long long)st->dirents_lost,
                     S.is_unmodelled || S.is_journal_full ? "false" : "true",
                     st->is_ok ? "true" : "false");
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;
    say("solfault: power cut: %.*s", n - 1, line);
    if (S.report[0] == 0)
        return;
    int fd = real_open(S.report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (real_write(fd, line, (size_t)n) != n)
            say("solfault: short write to %s", S.report);
        real_close(fd);
    }
}

/* Called with the lock held; never returns. */
static void power_cut(const char *why)
{
    S.is_cutting = true;
    enum cut_mode mode = pick_mode();
    uint64_t sector = S.sector ? (uint64_t)S.sector : (coin() ? 512 : 4096);
    struct cut_stats st = {.is_ok = true};
    for (int i = 0; i < S.nfiles; i++)
        revert_file(&S.files[i], mode, sector, &st);
    lose_dirents(mode, &st);
    report(why, mode, sector, &st);
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

/* An event on a tracked file: true when the cut must happen now. */
static bool cut_due(void)
{
    S.events++;
    if (S.cut_at > 0 && S.events == S.cut_at)
        return true;
    if (S.is_armed) {
        if (S.armed_skip == 0)
            return true;
        S.armed_skip--;
    }
    return false;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    for (int i = 0; i < 1000 && nanosleep(&ts, &ts) != 0 && errno == EINTR; i++)
        ;
}

static void *cut_timer(void *arg)
{
    (void)arg;
    sleep_ms(S.cut_after_ms);
    pthread_mutex_lock(&lock);
    S.is_armed = true;
    S.armed_skip = (int)(next_rand() % 4);
    pthread_mutex_unlock(&lock);
    sleep_ms(S.cut_window_ms);
    pthread_mutex_lock(&lock);
    power_cut("timer"); /* between two events */
    return NULL;
}

/* ---- writes -------------------------------------------------------------------- */

static bool enospc_now(void)
{
    if (S.enospc_after < 0 || S.written < (uint64_t)S.enospc_after || enospc_off)
        return false;
    if (S.enospc_file[0] != 0 && access(S.enospc_file, F_OK) != 0)
        return false;
    return true;
}

static void pread_all(int fd, uint8_t *p, uint64_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = real_pread(fd, p, len, (off_t)off);
        if (n <= 0) {
            memset(p, 0, len); /* past the end after all */
            return;
        }
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
}

enum how { HOW_WRITE, HOW_WRITEV, HOW_PWRITE, HOW_PWRITEV, HOW_PWRITEV2 };

static ssize_t perform(enum how how, int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    switch (how) {
    case HOW_WRITE:
        return real_write(fd, iov[0].iov_base, iov[0].iov_len);
    case HOW_WRITEV:
        return real_writev(fd, iov, cnt);
    case HOW_PWRITE:
        return real_pwrite(fd, iov[0].iov_base, iov[0].iov_len, off);
    case HOW_PWRITEV:
        return real_pwritev(fd, iov, cnt, off);
    case HOW_PWRITEV2:
        return real_pwritev2(fd, iov, cnt, off, flags);
    }
    errno = EINVAL;
    return -1;
}

/* Grows f's record array for one more record; false on allocation failure. */
static bool recs_reserve(struct tfile *f)
{
    if (f->nrec < f->cap)
        return true;
    size_t cap = f->cap ? f->cap * 2 : 256;
    void *bigger = realloc(f->recs, cap * sizeof(*f->recs));
    if (bigger == NULL)
        return false;
    f->recs = bigger;
    f->cap = cap;
    return true;
}

/* Journals one write: old bytes first, then the real call. Lock held.
 * *journaled is set when the write became the file's last record. */
static ssize_t journaled(struct fdent *e, enum how how, int fd, const struct iovec *iov, int cnt,
                         off_t off, int flags, bool *is_journaled)
{
    struct tfile *f = &S.files[e->index];
    uint64_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    uint64_t at = (how == HOW_WRITE || how == HOW_WRITEV || off < 0)
                      ? (uint64_t)lseek(fd, 0, SEEK_CUR)
                      : (uint64_t)off;
    struct wrec r = {.off = at, .len = total};
    r.old_len = f->size > at ? (f->size - at < total ? f->size - at : total) : 0;
    if (S.journal + r.old_len > S.journal_max) {
        if (!S.is_journal_full)
            say("solfault: journal over %llu MiB; later writes are not revertable",
                (unsigned long long)(S.journal_max / MIB));
        S.is_journal_full = true;
        return perform(how, fd, iov, cnt, off, flags);
    }
    r.old = malloc(r.old_len ? r.old_len : 1);
    if (r.old == NULL || !recs_reserve(f)) {
        free(r.old);
        say("solfault: out of memory journaling a write of %s; refusing it", f->path);
        errno = ENOMEM; /* a test tool: refuse the write rather than journal it wrongly */
        return -1;
    }
    pread_all(f->own_fd, r.old, r.old_len, at);
    ssize_t n = perform(how, fd, iov, cnt, off, flags);
    if (n <= 0) {
        free(r.old);
        return n;
    }
    r.len = (uint64_t)n;
    if (r.old_len > r.len)
        r.old_len = r.len;
    r.is_durable = e->is_dsync || (flags & (RWF_DSYNC | RWF_SYNC)) != 0;
    f->recs[f->nrec++] = r;
    *is_journaled = true;
    S.journal += r.old_len;
    S.written += (uint64_t)n;
    if (at + (uint64_t)n > f->size)
        f->size = at + (uint64_t)n;
    return n;
}

/* The write reaches past the tracked file's end: on a full ext4 disk that
 * needs blocks it cannot get. Lock held. */
static bool needs_space(const struct fdent *e, enum how how, int fd, const struct iovec *iov,
                        int cnt, off_t off)
{
    uint64_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    uint64_t at = (how == HOW_WRITE || how == HOW_WRITEV || off < 0)
                      ? (uint64_t)lseek(fd, 0, SEEK_CUR)
                      : (uint64_t)off;
    return at + total > S.files[e->index].size;
}

static ssize_t do_write(enum how how, int fd, const struct iovec *iov, int cnt, off_t off,
                        int flags)
{
    ensure_init();
    pthread_mutex_lock(&lock);
    struct fdent *e = fd_get(fd);
    if (e == NULL || e->kind != FD_FILE) {
        pthread_mutex_unlock(&lock);
        return perform(how, fd, iov, cnt, off, flags);
    }
    if (enospc_now() && needs_space(e, how, fd, iov, cnt, off)) {
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    bool is_journaled = false;
    ssize_t n = journaled(e, how, fd, iov, cnt, off, flags, &is_journaled);
    int saved = errno;
    if (cut_due()) {
        struct tfile *f = &S.files[e->index];
        if (is_journaled)
            f->recs[f->nrec - 1].is_durable = false; /* cut while it was in flight */
        power_cut("write");
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return do_write(HOW_WRITE, fd, &iov, 1, -1, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    return do_write(HOW_WRITEV, fd, iov, cnt, -1, 0);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    struct iovec iov = {(void *)buf, n};
    return do_write(HOW_PWRITE, fd, &iov, 1, off, 0);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return do_write(HOW_PWRITEV, fd, iov, cnt, off, 0);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return pwritev(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return do_write(HOW_PWRITEV2, fd, iov, cnt, off, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return pwritev2(fd, iov, cnt, off, flags);
}

/* ---- syncs ------------------------------------------------------------------------ */

static void file_synced(struct tfile *f)
{
    for (size_t i = 0; i < f->nrec; i++) {
        S.journal -= f->recs[i].old_len;
        free(f->recs[i].old);
    }
    f->nrec = 0;
    f->synced_size = f->size;
}

static int do_sync(int fd, int (*fn)(int))
{
    ensure_init();
    pthread_mutex_lock(&lock);
    struct fdent *e = fd_get(fd);
    if (e == NULL) {
        pthread_mutex_unlock(&lock);
        return fn(fd);
    }
    if (e->kind == FD_DIR) {
        int rc = fn(fd);
        if (rc == 0)
            dir_synced(e->path);
        pthread_mutex_unlock(&lock);
        return rc;
    }
    if (cut_due())
        power_cut("sync");
    S.syncs++;
    if (S.eio_at_sync > 0 && S.syncs >= S.eio_at_sync &&
        (S.eio_count == 0 || S.syncs < S.eio_at_sync + S.eio_count)) {
        pthread_mutex_unlock(&lock);
        errno = EIO;
        return -1;
    }
    int rc = fn(fd);
    int saved = errno;
    if (rc == 0)
        file_synced(&S.files[e->index]);
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

int fsync(int fd)
{
    ensure_init();
    return do_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
    ensure_init();
    return do_sync(fd, real_fdatasync);
}

void sync(void)
{
    ensure_init();
    pthread_mutex_lock(&lock);
    real_sync();
    for (int i = 0; i < S.nfiles; i++)
        file_synced(&S.files[i]);
    pthread_mutex_unlock(&lock);
}

int syncfs(int fd)
{
    ensure_init();
    pthread_mutex_lock(&lock);
    int rc = real_syncfs(fd);
    struct stat sb;
    for (int i = 0; rc == 0 && i < S.nfiles; i++)
        if (fstat(fd, &sb) == 0 && sb.st_dev == S.files[i].dev)
            file_synced(&S.files[i]);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- what is not modelled ------------------------------------------------------------ */

int ftruncate(int fd, off_t len)
{
    ensure_init();
    pthread_mutex_lock(&lock);
    struct fdent *e = fd_get(fd);
    if (e != NULL && e->kind == FD_FILE) {
        warn_unmodelled("ftruncate", S.files[e->index].path);
        S.files[e->index].size = (uint64_t)len;
    }
    pthread_mutex_unlock(&lock);
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len)
{
    return ftruncate(fd, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    RESOLVE(mmap);
    if (fd >= 0 && (prot & PROT_WRITE) && (flags & MAP_SHARED)) {
        ensure_init();
        pthread_mutex_lock(&lock);
        struct fdent *e = fd_get(fd);
        if (e != NULL && e->kind == FD_FILE)
            warn_unmodelled("writable shared mapping", S.files[e->index].path);
        pthread_mutex_unlock(&lock);
    }
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

int msync(void *addr, size_t len, int flags)
{
    ensure_init();
    return real_msync(addr, len, flags);
}
