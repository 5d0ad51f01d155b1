/*
 * server_fixture.h - a server shell for the tests of src/server/: a real
 * store in a fresh temporary directory, a session manager that answers
 * through conn_sink, and a struct server with a libev loop of its own (no
 * listener, no server_new(): the test adds connections on socketpairs).
 * Included by test_conn_output.c and test_uring.c, after cmocka.h.
 */
#ifndef SOL_TEST_SERVER_FIXTURE_H
#define SOL_TEST_SERVER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"
#include "session.h"
#include "store.h"

struct server_shell {
    char dir[64];
    struct store *store;
    struct session_mgr *mgr;
    struct server *srv;
};

/* dir_template: "/tmp/sol-test-NAME-XXXXXX". Fails the test on any error. */
static void server_shell_open(struct server_shell *sh, const char *dir_template)
{
    snprintf(sh->dir, sizeof(sh->dir), "%s", dir_template);
    assert_non_null(mkdtemp(sh->dir));
    struct store_options opts;
    store_options_init(&opts);
    opts.dir = sh->dir;
    opts.sync = STORE_SYNC_NOSYNC;
    char err[256];
    assert_int_equal(store_open(&opts, &sh->store, err, sizeof(err)), 0);
    struct session_config config;
    session_config_defaults(&config);
    assert_int_equal(session_mgr_new(&config, sh->store, &conn_sink, &sh->mgr, err, sizeof(err)),
                     0);
    sh->srv = calloc(1, sizeof(*sh->srv));
    assert_non_null(sh->srv);
    sh->srv->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(sh->srv->loop);
    sh->srv->mgr = sh->mgr;
}

/* Frees what server_shell_open() made (the test frees its connections
 * first) and removes the directory. Returns 0, or -1 if that failed. */
static int server_shell_close(struct server_shell *sh)
{
    server_uring_free(sh->srv->uring);
    free(sh->srv->reads);
    ev_loop_destroy(sh->srv->loop);
    free(sh->srv);
    session_mgr_free(sh->mgr);
    store_close(sh->store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sh->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
