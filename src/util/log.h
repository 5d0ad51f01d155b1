/*
 * log.h - the broker's log: one line per event, with a timestamp and a level,
 * to any of stderr, stdout, a file (reopened on SIGHUP) and syslog.
 * Not for: protocol tracing of payloads (never log payload bytes), or
 * deciding what to log (callers do; configuration is main's).
 */
#ifndef SOL_LOG_H
#define SOL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_NOTICE = 2,
    LOG_LEVEL_INFO = 3,
    LOG_LEVEL_DEBUG = 4,
};

/* Bit of a level in a log_set_levels() mask. */
#define LOG_LEVEL_BIT(level) (1u << (level))

/* Logs `level` and every level below it (more severe). Default: LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
/* Logs exactly the levels in mask (LOG_LEVEL_BIT()s), as Mosquitto's log_type. */
void log_set_levels(unsigned mask);
/* The most verbose level logged (LOG_LEVEL_ERROR when the mask is empty). */
enum log_level log_get_level(void);
/* True when a line at `level` would be written (skip building costly lines). */
bool log_is_enabled(enum log_level level);

/* Sends lines to stream only (borrowed; default stderr). For tests. */
void log_set_stream(FILE *stream);

/* Destinations for log_open(), as a bit set. */
enum log_dest {
    LOG_DEST_STDERR = 1u << 0,
    LOG_DEST_STDOUT = 1u << 1,
    LOG_DEST_FILE = 1u << 2,
    LOG_DEST_SYSLOG = 1u << 3,
};

/*
 * Sends lines to `dests` (0: nowhere). With LOG_DEST_FILE, file_path (copied)
 * is opened for appending, created with mode 0640 if missing. syslog uses the
 * ident "sol" and the daemon facility. Returns 0, or -1 with "PATH: REASON"
 * in err (the previous destinations stay).
 */
int log_open(unsigned dests, const char *file_path, char *err, size_t err_len);

/*
 * Closes and reopens the log file (SIGHUP, after logrotate moved it). On
 * failure the old file stays open and -1 comes back with "PATH: REASON" in
 * err. Without a log file, does nothing and returns 0.
 */
int log_reopen(char *err, size_t err_len);

/* Closes the file and syslog; later lines go to stderr. */
void log_close(void);

/* connection_messages: whether log_connection() lines are written. Default on. */
void log_set_connection_messages(bool is_on);
bool log_connection_messages(void);

/* log_type subscribe / unsubscribe (off by default): whether
 * log_subscribe() / log_unsubscribe() lines are written. They are written
 * whatever the level mask, as Mosquitto's own log types are. */
void log_set_subscription_messages(bool subscribe, bool unsubscribe);
bool log_subscribe_messages(void);
bool log_unsubscribe_messages(void);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As log_write(), whatever the level mask (for the log types above). */
void log_write_always(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_write(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
/* A client connected or disconnected (Mosquitto's "New client connected from
 * ..." / "Client ... disconnected."): notice level, unless connection_messages
 * is off. */
#define log_connection(...)                                                                        \
    do {                                                                                           \
        if (log_connection_messages())                                                             \
            log_write(LOG_LEVEL_NOTICE, __VA_ARGS__);                                              \
    } while (0)

/* Mosquitto's subscribe / unsubscribe lines: "CLIENT QOS FILTER" and
 * "CLIENT FILTER", when log_type subscribe / unsubscribe asked for them. */
#define log_subscribe(...)                                                                         \
    do {                                                                                           \
        if (log_subscribe_messages())                                                              \
            log_write_always(LOG_LEVEL_NOTICE, __VA_ARGS__);                                       \
    } while (0)
#define log_unsubscribe(...)                                                                       \
    do {                                                                                           \
        if (log_unsubscribe_messages())                                                            \
            log_write_always(LOG_LEVEL_NOTICE, __VA_ARGS__);                                       \
    } while (0)

#endif /* SOL_LOG_H */
