/*
 * log_config.c - maps the config file's log settings onto the log module.
 * Not for: writing log lines (log.c).
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "log_config.h"

/* log_type bits into log levels; -v adds debug. subscribe/unsubscribe are
 * message kinds, not levels (see log_set_subscription_messages). */
static unsigned log_levels(const struct sol_config *cfg, bool is_verbose)
{
    unsigned mask = 0;
    if (cfg->log_types & CONFIG_LOG_ERROR)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_ERROR);
    if (cfg->log_types & CONFIG_LOG_WARNING)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_WARNING);
    if (cfg->log_types & CONFIG_LOG_NOTICE)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_NOTICE);
    if (cfg->log_types & CONFIG_LOG_INFORMATION)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_INFO);
    if (is_verbose || (cfg->log_types & CONFIG_LOG_DEBUG))
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_DEBUG);
    return mask;
}

static unsigned log_dests(const struct sol_config *cfg)
{
    unsigned dests = 0;
    if (cfg->log_dests & CONFIG_LOG_DEST_STDERR)
        dests |= LOG_DEST_STDERR;
    if (cfg->log_dests & CONFIG_LOG_DEST_STDOUT)
        dests |= LOG_DEST_STDOUT;
    if (cfg->log_dests & CONFIG_LOG_DEST_FILE)
        dests |= LOG_DEST_FILE;
    if (cfg->log_dests & CONFIG_LOG_DEST_SYSLOG)
        dests |= LOG_DEST_SYSLOG;
    return dests;
}

void log_describe_dests(const struct sol_config *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s%s%s", cfg->log_dests & CONFIG_LOG_DEST_STDERR ? ", stderr" : "",
             cfg->log_dests & CONFIG_LOG_DEST_STDOUT ? ", stdout" : "",
             cfg->log_dests & CONFIG_LOG_DEST_SYSLOG ? ", syslog" : "",
             cfg->log_dests & CONFIG_LOG_DEST_FILE ? ", file " : "",
             cfg->log_dests & CONFIG_LOG_DEST_FILE ? cfg->log_file : "");
    if (out[0] == ',')
        memmove(out, out + 2, strlen(out + 2) + 1);
    else
        snprintf(out, len, "nowhere");
}

int log_setup_from_config(const struct sol_config *cfg, bool is_verbose, char *err, size_t err_len)
{
    log_set_levels(log_levels(cfg, is_verbose));
    log_set_connection_messages(cfg->connection_messages);
    log_set_subscription_messages((cfg->log_types & CONFIG_LOG_SUBSCRIBE) != 0,
                                  (cfg->log_types & CONFIG_LOG_UNSUBSCRIBE) != 0);
    char why[480];
    if (log_open(log_dests(cfg), cfg->log_file, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "log_dest file: %s", why);
        return -1;
    }
    return 0;
}
