/*
 * flags.c - sol's command line: getopt, usage, value checks.
 * Not for: the config file (src/util/config.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "broker.h"
#include "config.h"
#include "server.h"

enum {
    OPT_VERSION = 256,
    OPT_CONNECT_TIMEOUT,
    OPT_MAX_PACKET_SIZE,
    OPT_TEST_CONFIG,
    OPT_CHECK_STORE
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sol [-c FILE] [-p PORT] [-v] [-d] [--test-config] [--check-store] [-h]\n"
            "           [--version]\n"
            "  -c FILE   read a Mosquitto-style config file (see conf/sol.conf)\n"
            "  -p PORT   listen on 127.0.0.1:PORT (default 1883; with -c, in addition to the\n"
            "            file's listeners)\n"
            "  -v        verbose (debug) logging\n"
            "  -d        run in the background as a daemon (pid_file is written); returns\n"
            "            once the broker listens, with its start-up error otherwise\n"
            "  --test-config  check the configuration (and the password, ACL and TLS files\n"
            "            it names), print \"configuration OK\" or the error, and exit\n"
            "  -h        this help\n"
            "  --version print the version\n"
            "  --connect-timeout SECONDS  close connections that send no CONNECT (default %.0f)\n"
            "  --max-packet-size BYTES    largest accepted packet (default: protocol maximum)\n"
            "  --check-store  before listening, check every record of the store (as\n"
            "            `solctl check`) and refuse to start on a problem; without it a\n"
            "            bounded sample is checked\n"
            "With no arguments sol listens on %s:%d, stores in %s/ and logs to stderr.\n",
            SERVER_DEFAULT_CONNECT_TIMEOUT_S, CONFIG_DEFAULT_BIND_ADDRESS, CONFIG_DEFAULT_PORT,
            CONFIG_DEFAULT_PERSISTENCE_LOCATION);
}

/* A whole-string number in [min, max]; -1 when it is not one. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

/* One flag into *f; -1 on a bad value (message printed). */
static int apply_flag(int opt, const char *arg, struct broker_flags *f)
{
    switch (opt) {
    case 'c':
        f->config_path = arg;
        return 0;
    case 'p':
        if (parse_long(arg, 1, 65535, &f->port) == 0)
            return 0;
        fprintf(stderr, "sol: -p: not a port number (1-65535): %s\n", arg);
        return -1;
    case 'v':
        f->is_verbose = true;
        return 0;
    case 'd':
        f->is_daemon = true;
        return 0;
    case OPT_TEST_CONFIG:
        f->is_test_config = true;
        return 0;
    case OPT_CHECK_STORE:
        f->is_check_store = true;
        return 0;
    case OPT_CONNECT_TIMEOUT:
        if (parse_seconds(arg, &f->connect_timeout_s) == 0)
            return 0;
        fprintf(stderr, "sol: --connect-timeout: not a number of seconds: %s\n", arg);
        return -1;
    case OPT_MAX_PACKET_SIZE:
        if (parse_long(arg, 2, 268435460, &f->max_packet_size) == 0)
            return 0;
        fprintf(stderr, "sol: --max-packet-size: not a size in bytes: %s\n", arg);
        return -1;
    default:
        usage(stderr);
        return -1;
    }
}

int broker_parse_flags(int argc, char **argv, struct broker_flags *f)
{
    static const struct option longs[] = {
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {"test-config", no_argument, NULL, OPT_TEST_CONFIG},
        {"check-store", no_argument, NULL, OPT_CHECK_STORE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"max-packet-size", required_argument, NULL, OPT_MAX_PACKET_SIZE},
        {NULL, 0, NULL, 0},
    };
    *f = (struct broker_flags){.port = -1, .connect_timeout_s = -1, .max_packet_size = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:vdh", longs, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == OPT_VERSION) {
            printf("sol %s\n", SOL_VERSION);
            return 1;
        }
        if (apply_flag(opt, optarg, f) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "sol: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}
