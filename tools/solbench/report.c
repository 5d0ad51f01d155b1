/*
 * report.c - turns a finished solbench run into figures: a few human-readable
 * lines, or with --json exactly one JSON object on one line (the format
 * tools/bench-vs-mosquitto.sh reads). Not for: measuring anything.
 */
#include "solbench.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>

struct figures {
    uint64_t expected;
    uint64_t lost;
    uint64_t dup;
    uint64_t ooo;
    uint64_t sub_min;
    uint64_t sub_max;
    double run_s;
    double throughput;
    double publish_rate;
    double idle_connect_s;
    double client_cpu_s;
    double p50_us;
    double p99_us;
    double p999_us;
    double max_us;
};

static double ns_to_s(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1e9 : 0.0;
}

static double client_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sum_streams(const struct bench *b, struct figures *f)
{
    f->sub_min = b->o.subs > 0 ? UINT64_MAX : 0;
    for (uint32_t s = 0; s < b->o.subs; s++) {
        const struct conn *c = &b->conns[b->o.idle + s];
        for (uint32_t p = 0; c->streams != NULL && p < b->o.pubs; p++) {
            f->dup += c->streams[p].dup;
            f->ooo += c->streams[p].ooo;
        }
        f->sub_min = c->received < f->sub_min ? c->received : f->sub_min;
        f->sub_max = c->received > f->sub_max ? c->received : f->sub_max;
    }
    for (uint32_t p = 0; p < b->o.pubs; p++) {
        if (b->pub_matches[p])
            f->expected += b->conns[b->nconns - b->o.pubs + p].next_seq * b->o.subs;
    }
    f->lost = f->expected > b->r.received ? f->expected - b->r.received : 0;
}

static void compute(const struct bench *b, struct figures *f)
{
    const struct bench_result *r = &b->r;
    sum_streams(b, f);
    f->run_s = ns_to_s(r->t_run_ns, r->t_run_end_ns);
    double rx_s = ns_to_s(r->t_run_ns, r->t_last_rx_ns);
    f->throughput = rx_s > 0 ? (double)r->received / rx_s : 0.0;
    f->publish_rate = f->run_s > 0 ? (double)r->published / f->run_s : 0.0;
    f->idle_connect_s = ns_to_s(r->t_start_ns, r->t_idle_done_ns);
    f->client_cpu_s = client_cpu_s();
    f->p50_us = (double)hist_quantile(&b->lat, 0.50) / 1e3;
    f->p99_us = (double)hist_quantile(&b->lat, 0.99) / 1e3;
    f->p999_us = (double)hist_quantile(&b->lat, 0.999) / 1e3;
    f->max_us = (double)b->lat.max_ns / 1e3;
}

/* The failure text with JSON's special characters replaced, so it needs no escaping. */
static void json_safe(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = (in[i] == '"' || in[i] == '\\' || (unsigned char)in[i] < 0x20) ? '\'' : in[i];
    out[i] = '\0';
}

static void print_json(const struct bench *b, const struct figures *f)
{
    const struct bench_opts *o = &b->o;
    const struct bench_result *r = &b->r;
    char failure[sizeof(r->failure)];
    json_safe(r->failure, failure, sizeof(failure));
    printf("{\"ok\":%s,\"failure\":\"%s\",\"qos\":%u,\"pubs\":%u,\"subs\":%u,\"idle\":%u,"
           "\"size\":%zu,\"topics\":%u,\"rate\":%.0f,\"window\":%" PRIu64 ",\"clean\":%d,",
           b->phase == PHASE_DONE ? "true" : "false", failure, o->qos, o->pubs, o->subs, o->idle,
           o->size, o->topics, o->rate, o->window, o->is_clean);
    printf("\"run_s\":%.3f,\"published\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"expected\":%" PRIu64
           ",\"received\":%" PRIu64 ",\"received_per_sub_min\":%" PRIu64
           ",\"received_per_sub_max\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
           ",\"out_of_order\":%" PRIu64 ",\"stale\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"unexpected_acks\":%" PRIu64 ",",
           f->run_s, r->published, r->acked, f->expected, r->received, f->sub_min, f->sub_max,
           f->lost, f->dup, f->ooo, r->stale, r->errors, r->unexpected_acks);
    printf("\"throughput_msgs\":%.1f,\"publish_rate_msgs\":%.1f,\"latency_p50_us\":%.1f,"
           "\"latency_p99_us\":%.1f,\"latency_p999_us\":%.1f,\"latency_max_us\":%.1f,"
           "\"idle_connected\":%u,\"idle_connect_s\":%.3f,\"broker_rss_before_kb\":%ld,"
           "\"broker_rss_after_kb\":%ld,\"client_cpu_s\":%.3f}\n",
           f->throughput, f->publish_rate, f->p50_us, f->p99_us, f->p999_us, f->max_us,
           r->idle_connected, f->idle_connect_s, r->broker_rss_before_kb, r->broker_rss_after_kb,
           f->client_cpu_s);
}

static void print_messages(const struct figures *f, const struct bench_result *r)
{
    printf("published   %" PRIu64 " (acked %" PRIu64 "), %.0f msg/s\n", r->published, r->acked,
           f->publish_rate);
    printf("received    %" PRIu64 " of %" PRIu64 " expected (per subscriber min %" PRIu64
           ", max %" PRIu64 ")\n",
           r->received, f->expected, f->sub_min, f->sub_max);
    printf("lost %" PRIu64 ", duplicated %" PRIu64 ", out of order %" PRIu64 ", stale %" PRIu64
           ", errors %" PRIu64 "\n",
           f->lost, f->dup, f->ooo, r->stale, r->errors);
    printf("throughput  %.0f msg/s received\n", f->throughput);
    printf("latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n", f->p50_us,
           f->p99_us, f->p999_us, f->max_us);
}

static void print_human(const struct bench *b, const struct figures *f)
{
    const struct bench_opts *o = &b->o;
    const struct bench_result *r = &b->r;
    printf("solbench: %u pub, %u sub, %u idle, QoS %u, %zu B, %u topics, rate %.0f/s%s, "
           "window %" PRIu64 ", %.1f s\n",
           o->pubs, o->subs, o->idle, o->qos, o->size, o->topics, o->rate,
           o->rate > 0 ? "" : " (max)", o->window, f->run_s);
    if (b->phase != PHASE_DONE)
        printf("FAILED      %s\n", r->failure);
    if (o->pubs > 0 || o->subs > 0)
        print_messages(f, r);
    if (o->idle > 0)
        printf("idle        %u of %u connected in %.3f s\n", r->idle_connected, o->idle,
               f->idle_connect_s);
    if (o->broker_pid > 0)
        printf("broker RSS  %ld kB before, %ld kB at the end of the run\n", r->broker_rss_before_kb,
               r->broker_rss_after_kb);
    printf("client CPU  %.2f s, errors %" PRIu64 "\n", f->client_cpu_s, r->errors);
}

void report_print(const struct bench *b)
{
    struct figures f = {0};
    compute(b, &f);
    if (b->o.json)
        print_json(b, &f);
    else
        print_human(b, &f);
}
