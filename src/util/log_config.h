/*
 * log_config.h - the config file's log_type/log_dest/connection_messages
 * settings applied to the log module (which knows nothing of config).
 */
#ifndef SOL_LOG_CONFIG_H
#define SOL_LOG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Levels, destinations and message kinds from cfg; is_verbose (-v) adds
 * debug. Opens the log file if one is configured: -1 with err if it cannot. */
int log_setup_from_config(const struct sol_config *cfg, bool is_verbose, char *err, size_t err_len);

/* "stderr, file PATH, syslog" (or "nowhere") for the start-up line. */
void log_describe_dests(const struct sol_config *cfg, char *out, size_t len);

#endif
