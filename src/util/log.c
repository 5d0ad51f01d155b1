/*
 * log.c - timestamped log lines. The one process-wide state in the broker
 * outside main: the log sinks, set at start-up and reopened on SIGHUP.
 * Not for: choosing destinations from the config (log_config.c does).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define ALL_LEVELS ((1u << (LOG_LEVEL_DEBUG + 1)) - 1)

static unsigned level_mask = ALL_LEVELS & ~LOG_LEVEL_BIT(LOG_LEVEL_DEBUG);
static FILE *log_stream; /* log_set_stream(): replaces every destination */
static unsigned log_dests = LOG_DEST_STDERR;
static FILE *log_file;      /* owned; LOG_DEST_FILE */
static char *log_file_path; /* owned */
static bool has_connection_messages = true;
static bool has_subscribe_messages, has_unsubscribe_messages;

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};
static const int syslog_priorities[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};

void log_set_level(enum log_level level)
{
    level_mask = (1u << (level + 1)) - 1;
}

void log_set_levels(unsigned mask)
{
    level_mask = mask & ALL_LEVELS;
}

enum log_level log_get_level(void)
{
    for (int level = LOG_LEVEL_DEBUG; level > LOG_LEVEL_ERROR; level--) {
        if (level_mask & LOG_LEVEL_BIT(level))
            return (enum log_level)level;
    }
    return LOG_LEVEL_ERROR;
}

bool log_is_enabled(enum log_level level)
{
    return (unsigned)level <= LOG_LEVEL_DEBUG && (level_mask & LOG_LEVEL_BIT(level)) != 0;
}

void log_set_stream(FILE *stream)
{
    log_stream = stream;
}

void log_set_connection_messages(bool is_on)
{
    has_connection_messages = is_on;
}

bool log_connection_messages(void)
{
    return has_connection_messages;
}

void log_set_subscription_messages(bool subscribe, bool unsubscribe)
{
    has_subscribe_messages = subscribe;
    has_unsubscribe_messages = unsubscribe;
}

bool log_subscribe_messages(void)
{
    return has_subscribe_messages;
}

bool log_unsubscribe_messages(void)
{
    return has_unsubscribe_messages;
}

/* Opens path for appending with close-on-exec; NULL with errno. */
static FILE *open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "a");
    if (f == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return f;
}

int log_open(unsigned dests, const char *file_path, char *err, size_t err_len)
{
    FILE *f = NULL;
    char *path = NULL;
    if (dests & LOG_DEST_FILE) {
        path = file_path != NULL ? strdup(file_path) : NULL;
        if (path == NULL) {
            snprintf(err, err_len, "log file: %s", file_path ? strerror(ENOMEM) : "no path");
            return -1;
        }
        f = open_append(path);
        if (f == NULL) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            free(path);
            return -1;
        }
    }
    log_close();
    log_file = f;
    log_file_path = path;
    log_dests = dests;
    if (dests & LOG_DEST_SYSLOG)
        openlog("sol", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    return 0;
}

int log_reopen(char *err, size_t err_len)
{
    if (log_file == NULL)
        return 0;
    FILE *f = open_append(log_file_path);
    if (f == NULL) {
        snprintf(err, err_len, "%s: %s", log_file_path, strerror(errno));
        return -1;
    }
    fclose(log_file);
    log_file = f;
    return 0;
}

void log_close(void)
{
    if (log_file != NULL)
        fclose(log_file);
    if (log_dests & LOG_DEST_SYSLOG)
        closelog();
    free(log_file_path);
    log_file = NULL;
    log_file_path = NULL;
    log_dests = LOG_DEST_STDERR;
}

static void write_line(FILE *out, const char *stamp, enum log_level level, const char *text)
{
    fprintf(out, "%s sol %s: %s\n", stamp, level_names[level], text);
    fflush(out);
}

static void write_text(enum log_level level, const char *text);

static void vwrite(enum log_level level, const char *fmt, va_list ap)
{
    char text[4096]; /* longer lines are truncated */
    vsnprintf(text, sizeof(text), fmt, ap);
    write_text(level, text);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_is_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}

void log_write_always(enum log_level level, const char *fmt, ...)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG)
        return;
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}

/* Stamps text and writes it to every destination. */
static void write_text(enum log_level level, const char *text)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char date[24], stamp[48];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03ldZ", date, now.tv_nsec / 1000000L);

    if (log_stream != NULL) {
        write_line(log_stream, stamp, level, text);
        return;
    }
    if (log_dests & LOG_DEST_STDERR)
        write_line(stderr, stamp, level, text);
    if (log_dests & LOG_DEST_STDOUT)
        write_line(stdout, stamp, level, text);
    if (log_file != NULL)
        write_line(log_file, stamp, level, text);
    if (log_dests & LOG_DEST_SYSLOG)
        syslog(syslog_priorities[level], "%s", text);
}
