/*
 * main.c - solctl: inspect a Sol store, read-only, next to a running broker.
 *   solctl dump [--json] [--data-dir DIR] [sessions|subscriptions|retained|
 *               queues|inflight|groups|bridges|messages|stats] [--client ID] [--topic FILTER]
 *               [--limit N] [--full]
 *   solctl check [--json] [--data-dir DIR]
 *   solctl stats [--json] [--data-dir DIR]
 *   solctl backup [--data-dir DIR] [--compact] [-c FILE | --max-size BYTES] DEST
 *   solctl passwd [-b] FILE USER [PASSWORD]  (passwd.c: a password file, not the store)
 * Errors (missing store, wrong path, corrupt file, ...) print one line on
 * stderr and exit 2; `check` exits 1 when it finds problems.
 * Not for: changing the store. It is opened read-only and LMDB readers never
 * block the broker's writer (backup writes only its copy).
 */
#include "solctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const sections[] = {"sessions", "subscriptions", "retained", "queues",
                                       "inflight", "groups",        "bridges",  "messages", "stats"};

static void usage(FILE *out)
{
    fputs("usage: solctl dump [--json] [--data-dir DIR] "
          "[sessions|subscriptions|retained|queues|inflight|groups|bridges|messages|stats]\n"
          "                   [--client ID] [--topic FILTER] [--limit N] [--full]\n"
          "       solctl check [--json] [--data-dir DIR]\n"
          "       solctl stats [--json] [--data-dir DIR]\n"
          "       solctl backup [--data-dir DIR] [--compact] [-c FILE | --max-size BYTES] DEST\n"
          "       solctl passwd [-b] FILE USER [PASSWORD]\n"
          "The data directory defaults to ./sol-data.\n",
          out);
}

static bool is_section(const char *s)
{
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strcmp(s, sections[i]) == 0)
            return true;
    return false;
}

static bool parse_limit(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || s[0] == '-')
        return false;
    *out = v;
    return true;
}

/* Takes the value of an option "--name VALUE" or "--name=VALUE". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int parse_positional(struct solctl_opts *o, const char *arg)
{
    if (o->command == NULL) {
        o->command = arg;
        return 0;
    }
    if (strcmp(o->command, "dump") == 0 && o->what == NULL && is_section(arg)) {
        o->what = arg;
        return 0;
    }
    if (strcmp(o->command, "backup") == 0 && o->dest == NULL) {
        o->dest = arg;
        return 0;
    }
    fprintf(stderr, "solctl: unexpected argument '%s' (try --help)\n", arg);
    return -1;
}

/* Returns 0, 1 for --help, or -1 after printing one error line. */
static int parse_args(int argc, char **argv, struct solctl_opts *o)
{
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--full") == 0)
            o->full = true;
        else if (strcmp(a, "--compact") == 0)
            o->compact = true;
        else if ((v = option_value(argc, argv, &i, "-c")) != NULL)
            o->config_file = v;
        else if ((v = option_value(argc, argv, &i, "--max-size")) != NULL) {
            if (!parse_limit(v, &o->max_size) || o->max_size == 0) {
                fprintf(stderr, "solctl: --max-size needs a positive number of bytes, got '%s'\n",
                        v);
                return -1;
            }
        } else if ((v = option_value(argc, argv, &i, "--data-dir")) != NULL)
            o->data_dir = v;
        else if ((v = option_value(argc, argv, &i, "--client")) != NULL)
            o->client = v;
        else if ((v = option_value(argc, argv, &i, "--topic")) != NULL)
            o->topic = v;
        else if ((v = option_value(argc, argv, &i, "--limit")) != NULL) {
            if (!parse_limit(v, &o->limit)) {
                fprintf(stderr, "solctl: --limit needs a non-negative number, got '%s'\n", v);
                return -1;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "solctl: unknown or incomplete option '%s' (try --help)\n", a);
            return -1;
        } else if (parse_positional(o, a) != 0) {
            return -1;
        }
    }
    return 0;
}

static bool command_known(const char *c)
{
    return strcmp(c, "dump") == 0 || strcmp(c, "check") == 0 || strcmp(c, "stats") == 0 ||
           strcmp(c, "backup") == 0;
}

/* passwd.c: the one command that does not open the store. */
int solctl_passwd(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "passwd") == 0)
        return solctl_passwd(argc - 1, argv + 1);
    struct solctl_opts o = {.data_dir = "./sol-data"};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        if (rc > 0)
            usage(stdout);
        return rc > 0 ? SOLCTL_EXIT_OK : SOLCTL_EXIT_ERROR;
    }
    if (o.command == NULL || !command_known(o.command)) {
        fprintf(stderr, "solctl: %s (try --help)\n",
                o.command == NULL ? "no command given" : "unknown command");
        return SOLCTL_EXIT_ERROR;
    }
    struct store_options so;
    store_options_init(&so);
    so.dir = o.data_dir;
    so.read_only = true;
    struct store *store = NULL;
    char err[512];
    rc = store_open(&so, &store, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "solctl: %s\n", err);
        return SOLCTL_EXIT_ERROR;
    }
    if (strcmp(o.command, "check") == 0)
        rc = solctl_check(store, &o);
    else if (strcmp(o.command, "backup") == 0)
        rc = solctl_backup(store, &o);
    else if (strcmp(o.command, "stats") == 0)
        rc = solctl_stats(store, &o);
    else
        rc = solctl_dump(store, &o);
    store_close(store);
    return rc;
}
