/*
 * solctl.h - what solctl's files share: parsed options, the output helpers
 * (human text and JSON Lines) and the commands. solctl opens the store
 * read-only, next to a running broker: LMDB readers never block the writer.
 * Not for: anything that writes to the store.
 */
#ifndef SOL_SOLCTL_H
#define SOL_SOLCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* Exit codes: 0 ok, 1 check found problems, 2 error (one line on stderr). */
enum { SOLCTL_EXIT_OK = 0, SOLCTL_EXIT_PROBLEMS = 1, SOLCTL_EXIT_ERROR = 2 };

/* Default payload bytes shown; --full shows all. */
#define SOLCTL_PAYLOAD_SHOWN 64

struct solctl_opts {
    const char *data_dir; /* default ./sol-data */
    const char *command;  /* dump | check | stats */
    const char *what;     /* dump section, NULL = all */
    const char *client;   /* --client ID, or NULL */
    const char *topic;    /* --topic FILTER, or NULL */
    uint64_t limit;       /* --limit N per section; 0 = no limit */
    bool json;            /* --json: JSON Lines */
    bool full;            /* --full: untruncated payloads */
    const char *dest;        /* backup: the destination directory */
    bool compact;            /* backup --compact */
    uint64_t max_size;       /* backup --max-size BYTES; 0 = from -c FILE or the default */
    const char *config_file; /* backup -c FILE: sol's config, for storage_max_size */
};

/* ---- output (print.c) ---- */
/* Writes s as a JSON string literal (quotes included), escaping as RFC 8259
 * requires; bytes that are not valid UTF-8 are written as \u00XX. */
void solctl_json_string(FILE *out, struct store_bytes s);
/* Writes s for humans: printable ASCII as is, anything else as \xNN. */
void solctl_text(FILE *out, struct store_bytes s);
/* Writes a payload under `key` (e.g. "payload"): for JSON ,"key":"text" or
 * ,"key_hex":"..." plus key_len and key_truncated; for humans key="..." or
 * key_hex=... . Truncated to SOLCTL_PAYLOAD_SHOWN bytes unless opts->full. */
void solctl_payload(FILE *out, const struct solctl_opts *opts, const char *key,
                    struct store_bytes p, uint64_t total_len);
/* ISO 8601 UTC of unix seconds into buf (>= 32 bytes). */
const char *solctl_time(char *buf, size_t len, uint64_t unix_s);

/* ---- MQTT 5 property blocks (props.c) ---- */
/* True when every property of block reads and may travel with a message. */
bool solctl_properties_valid(struct store_bytes block);
/* Writes block (if not empty) under key: JSON ,"key":[{"id":..,"name":..,
 * "value":..}, ...]; for humans key={name=value ...}. */
void solctl_properties(FILE *out, const struct solctl_opts *opts, const char *key,
                       struct store_bytes block);

/* ---- commands (dump.c, check.c) ---- */
int solctl_dump(struct store *store, const struct solctl_opts *opts);
int solctl_stats(struct store *store, const struct solctl_opts *opts);
int solctl_check(struct store *store, const struct solctl_opts *opts);
/* backup.c: `solctl backup DEST` (see there). */
int solctl_backup(struct store *store, const struct solctl_opts *opts);

#endif /* SOL_SOLCTL_H */
