/*
 * main.c - flags, configuration, open the store, start the server.
 * Placeholder until the broker issue lands: it says so and exits.
 */
#include <stdio.h>

#include "log.h"
#include "mqtt.h"

int main(void)
{
    log_notice("sol %s: the broker is not built yet (placeholder; see the broker issue)",
               SOL_VERSION);
    return 0;
}
