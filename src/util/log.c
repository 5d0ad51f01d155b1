/*
 * log.c - timestamped log lines. The one process-wide state in the broker
 * outside main: the log sink, set once at start-up.
 */
#include "log.h"

#include <stdarg.h>
#include <time.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warning", "notice", "info", "debug"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

void log_set_stream(FILE *stream)
{
    log_stream = stream;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    FILE *out = log_stream ? log_stream : stderr;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%s.%03ldZ sol %s: ", stamp, now.tv_nsec / 1000000L, level_names[level]);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    fflush(out);
    va_end(ap);
}
