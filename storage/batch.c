/*
 * batch.c - recording a batch: each operation validates its arguments, encodes
 * its key and value into one owning allocation and appends it to the op log.
 * Nothing touches LMDB here; commit.c applies the log in one transaction, and
 * can replay it after growing the map.
 * Not for: applying or committing (commit.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAYLOAD_LEN 268435455u /* MQTT 3.1.1 remaining length limit */
#define MAX_TOPIC_LEN   65535u     /* [MQTT-4.7.3-3] */

struct store_batch *store_batch_new(struct store *store)
{
    struct store_batch *b = calloc(1, sizeof(*b));
    if (b != NULL)
        b->store = store;
    return b;
}

bool store_batch_is_empty(const struct store_batch *batch)
{
    return batch->op_count == 0;
}

int store_batch_on_commit(struct store_batch *batch, store_done_fn fn, void *arg)
{
    if (batch->err != 0)
        return batch->err;
    if (fn == NULL)
        return STORE_ERR_INVALID;
    if (batch->done_count == batch->done_cap) {
        size_t cap = batch->done_cap ? batch->done_cap * 2 : 8;
        struct store_completion *d = realloc(batch->done, cap * sizeof(*d));
        if (d == NULL) {
            batch->err = -ENOMEM;
            return batch->err;
        }
        batch->done = d;
        batch->done_cap = cap;
    }
    batch->done[batch->done_count++] = (struct store_completion){fn, arg};
    return 0;
}

void store_batch_fail(struct store_batch *batch, int err)
{
    if (batch != NULL && batch->err == 0)
        batch->err = err;
}

/* Allocates an op with room for its key and value and links it at the tail.
 * On allocation failure the batch's sticky error is set and NULL returned. */
static struct store_op *op_add(struct store_batch *b, enum op_type type, enum store_db db,
                               size_t key_len, size_t val_len)
{
    struct store_op *op = NULL;
    if (val_len <= SIZE_MAX - sizeof(*op) - key_len)
        op = malloc(sizeof(*op) + key_len + val_len);
    if (op == NULL) {
        b->err = -ENOMEM;
        return NULL;
    }
    *op = (struct store_op){.type = type, .db = db, .key_len = key_len, .val_len = val_len};
    if (b->tail != NULL)
        b->tail->next = op;
    else
        b->head = op;
    b->tail = op;
    b->op_count++;
    b->op_bytes += key_len + val_len;
    return op;
}

static uint8_t *op_val(struct store_op *op)
{
    return op->data + op->key_len;
}

/* Records an op keyed "client" (sessions) or "client 00 suffix". */
static struct store_op *client_op(struct store_batch *b, enum op_type type, enum store_db db,
                                  struct store_bytes client, const uint8_t *suffix,
                                  size_t suffix_len, size_t val_len)
{
    size_t key_len = client.len + (suffix != NULL ? 1 + suffix_len : 0);
    struct store_op *op = op_add(b, type, db, key_len, val_len);
    if (op == NULL)
        return NULL;
    if (suffix == NULL) {
        memcpy(op->data, client.data, client.len);
    } else {
        size_t n = store_key_client_prefix(op->data, client);
        memcpy(op->data + n, suffix, suffix_len);
    }
    return op;
}

static int session_valid(const struct store_session *s)
{
    if (!s->has_will)
        return 0;
    if (!store_qos_valid(s->will_qos) || s->will_topic.len == 0 ||
        s->will_topic.len > MAX_TOPIC_LEN || s->will_payload.len > MAX_PAYLOAD_LEN ||
        s->will_props.len > MAX_PAYLOAD_LEN)
        return STORE_ERR_INVALID;
    return 0;
}

int store_batch_put_session(struct store_batch *batch, struct store_bytes client_id,
                            const struct store_session *session)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, client_id);
    if (rc == 0)
        rc = session_valid(session);
    if (rc != 0)
        return rc;
    size_t len = store_session_len(session);
    struct store_op *op = client_op(batch, OP_PUT_SESSION, DB_SESSIONS, client_id, NULL, 0, len);
    if (op == NULL)
        return batch->err;
    store_session_encode(op_val(op), session);
    return 0;
}

int store_batch_delete_session(struct store_batch *batch, struct store_bytes client_id)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, client_id);
    if (rc != 0)
        return rc;
    if (client_op(batch, OP_DEL_SESSION, DB_SESSIONS, client_id, NULL, 0, 0) == NULL)
        return batch->err;
    return 0;
}

static int sub_key_valid(struct store_batch *b, struct store_bytes client, struct store_bytes f)
{
    int rc = store_check_client_id(b->store, client);
    if (rc == 0)
        rc = store_check_key_string(b->store, f, client.len + 1);
    return rc;
}

int store_batch_put_subscription(struct store_batch *batch, struct store_bytes client_id,
                                 struct store_bytes filter, uint8_t options, uint32_t sub_id)
{
    if (batch->err != 0)
        return batch->err;
    int rc = sub_key_valid(batch, client_id, filter);
    if (rc == 0 && !store_sub_options_valid(options))
        rc = STORE_ERR_INVALID;
    if (rc != 0)
        return rc;
    uint8_t val[5];
    size_t val_len = store_sub_encode(val, options, sub_id);
    struct store_op *op =
        client_op(batch, OP_PUT, DB_SUBS, client_id, filter.data, filter.len, val_len);
    if (op == NULL)
        return batch->err;
    memcpy(op_val(op), val, val_len);
    return 0;
}

int store_batch_delete_subscription(struct store_batch *batch, struct store_bytes client_id,
                                    struct store_bytes filter)
{
    if (batch->err != 0)
        return batch->err;
    int rc = sub_key_valid(batch, client_id, filter);
    if (rc != 0)
        return rc;
    if (client_op(batch, OP_DEL, DB_SUBS, client_id, filter.data, filter.len, 0) == NULL)
        return batch->err;
    return 0;
}

int store_batch_put_retained(struct store_batch *batch, const struct store_retained *r)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_key_string(batch->store, r->topic, 0);
    if (rc == 0 && (!store_qos_valid(r->qos) || r->payload.len > MAX_PAYLOAD_LEN ||
                    r->props.len > MAX_PAYLOAD_LEN))
        rc = STORE_ERR_INVALID;
    if (rc != 0)
        return rc;
    struct store_op *op = op_add(batch, OP_PUT, DB_RETAINED, r->topic.len, store_retained_len(r));
    if (op == NULL)
        return batch->err;
    memcpy(op->data, r->topic.data, r->topic.len);
    store_retained_encode(op_val(op), r);
    return 0;
}

int store_batch_delete_retained(struct store_batch *batch, struct store_bytes topic)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_key_string(batch->store, topic, 0);
    if (rc != 0)
        return rc;
    struct store_op *op = op_add(batch, OP_DEL, DB_RETAINED, topic.len, 0);
    if (op == NULL)
        return batch->err;
    memcpy(op->data, topic.data, topic.len);
    return 0;
}

static bool message_valid(uint64_t msg_id, const struct store_message *m)
{
    return msg_id != 0 && store_qos_valid(m->qos) && m->topic.len > 0 && m->topic.data != NULL &&
           m->topic.len <= MAX_TOPIC_LEN && m->payload.len <= MAX_PAYLOAD_LEN &&
           m->props.len <= MAX_PAYLOAD_LEN;
}

int store_batch_put_message(struct store_batch *batch, uint64_t msg_id,
                            const struct store_message *msg)
{
    if (batch->err != 0)
        return batch->err;
    if (!message_valid(msg_id, msg))
        return STORE_ERR_INVALID;
    struct store_op *op = op_add(batch, OP_PUT_MESSAGE, DB_MESSAGES, 8, store_message_len(msg));
    if (op == NULL)
        return batch->err;
    op->msg_id = msg_id;
    store_put_u64(op->data, msg_id);
    store_message_encode(op_val(op), msg);
    return 0;
}

static bool entry_valid(const struct store_queue_entry *e)
{
    if (e->msg_id == 0 || !store_qos_valid(e->qos) || e->state > STORE_PUBREC_RECEIVED ||
        e->sub_id_count > STORE_SUB_IDS_MAX)
        return false;
    return e->state == STORE_QUEUED || e->packet_id != 0; /* [MQTT-2.3.1-1] */
}

static struct store_op *queue_op(struct store_batch *b, enum op_type type, enum store_db db,
                                 struct store_bytes client, uint64_t seq, size_t val_len)
{
    uint8_t seq_be[8];
    store_put_u64(seq_be, seq);
    return client_op(b, type, db, client, seq_be, sizeof(seq_be), val_len);
}

/* Appends to a client's (DB_QUEUES) or a bridge's (DB_BRIDGE_QUEUES) queue. */
static int entry_append(struct store_batch *batch, enum store_db db, struct store_bytes owner,
                        uint64_t seq, const struct store_queue_entry *entry)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, owner);
    if (rc == 0 && !entry_valid(entry))
        rc = STORE_ERR_INVALID;
    if (rc != 0)
        return rc;
    struct store_op *op =
        queue_op(batch, OP_QUEUE_APPEND, db, owner, seq, store_entry_len(db, entry));
    if (op == NULL)
        return batch->err;
    op->msg_id = entry->msg_id;
    store_entry_encode(db, op_val(op), entry);
    return 0;
}

static int entry_update(struct store_batch *batch, enum store_db db, struct store_bytes owner,
                        uint64_t seq, enum store_queue_state state, uint16_t packet_id)
{
    if (batch->err != 0)
        return batch->err;
    /* msg id and qos are placeholders: commit keeps the stored ones */
    struct store_queue_entry e = {.msg_id = 1, .qos = 1, .state = state, .packet_id = packet_id};
    int rc = store_check_client_id(batch->store, owner);
    if (rc == 0 && !entry_valid(&e))
        rc = STORE_ERR_INVALID;
    if (rc != 0)
        return rc;
    struct store_op *op = queue_op(batch, OP_QUEUE_UPDATE, db, owner, seq, QUEUE_VAL_LEN);
    if (op == NULL)
        return batch->err;
    store_queue_encode(op_val(op), &e);
    return 0;
}

static int entry_delete(struct store_batch *batch, enum store_db db, struct store_bytes owner,
                        uint64_t seq)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, owner);
    if (rc != 0)
        return rc;
    if (queue_op(batch, OP_QUEUE_DELETE, db, owner, seq, 0) == NULL)
        return batch->err;
    return 0;
}

int store_batch_queue_append(struct store_batch *batch, struct store_bytes client_id, uint64_t seq,
                             const struct store_queue_entry *entry)
{
    return entry_append(batch, DB_QUEUES, client_id, seq, entry);
}

int store_batch_queue_update(struct store_batch *batch, struct store_bytes client_id, uint64_t seq,
                             enum store_queue_state state, uint16_t packet_id)
{
    return entry_update(batch, DB_QUEUES, client_id, seq, state, packet_id);
}

int store_batch_queue_delete(struct store_batch *batch, struct store_bytes client_id, uint64_t seq)
{
    return entry_delete(batch, DB_QUEUES, client_id, seq);
}

int store_batch_bridge_append(struct store_batch *batch, struct store_bytes bridge, uint64_t seq,
                              const struct store_queue_entry *entry)
{
    return entry_append(batch, DB_BRIDGE_QUEUES, bridge, seq, entry);
}

int store_batch_bridge_update(struct store_batch *batch, struct store_bytes bridge, uint64_t seq,
                              enum store_queue_state state, uint16_t packet_id)
{
    return entry_update(batch, DB_BRIDGE_QUEUES, bridge, seq, state, packet_id);
}

int store_batch_bridge_delete(struct store_batch *batch, struct store_bytes bridge, uint64_t seq)
{
    return entry_delete(batch, DB_BRIDGE_QUEUES, bridge, seq);
}

/* ---- group queues: the same entries under the group's name (store.h) ---- */

int store_batch_group_queue_append(struct store_batch *batch, struct store_bytes group,
                                   uint64_t seq, uint64_t msg_id, uint8_t qos, bool retain)
{
    struct store_queue_entry entry = {
        .msg_id = msg_id, .qos = qos, .state = STORE_QUEUED, .retain = retain};
    return entry_append(batch, DB_GROUPQ, group, seq, &entry);
}

int store_batch_group_queue_delete(struct store_batch *batch, struct store_bytes group,
                                   uint64_t seq)
{
    return entry_delete(batch, DB_GROUPQ, group, seq);
}

int store_batch_delete_group_queue(struct store_batch *batch, struct store_bytes group)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, group);
    if (rc != 0)
        return rc;
    /* the key is "group 00": every entry of the group and nothing else */
    if (client_op(batch, OP_DEL_PREFIX, DB_GROUPQ, group, (const uint8_t *)"", 0, 0) == NULL)
        return batch->err;
    return 0;
}

static struct store_op *qos2_op(struct store_batch *b, enum op_type type, enum store_db db,
                                struct store_bytes client, uint16_t packet_id, size_t val_len)
{
    uint8_t pkid_be[2];
    store_put_u16(pkid_be, packet_id);
    return client_op(b, type, db, client, pkid_be, sizeof(pkid_be), val_len);
}

/* The sticky error, a bad client id, or packet id 0 [MQTT-2.3.1-1]. */
static int check_qos2_args(const struct store_batch *batch, struct store_bytes client_id,
                           uint16_t packet_id)
{
    if (batch->err != 0)
        return batch->err;
    int rc = store_check_client_id(batch->store, client_id);
    if (rc == 0 && packet_id == 0)
        rc = STORE_ERR_INVALID;
    return rc;
}

static int qos2_put(struct store_batch *batch, enum store_db db, struct store_bytes owner,
                    uint16_t packet_id, uint64_t received_at_s)
{
    int rc = check_qos2_args(batch, owner, packet_id);
    if (rc != 0)
        return rc;
    struct store_op *op = qos2_op(batch, OP_PUT, db, owner, packet_id, 8);
    if (op == NULL)
        return batch->err;
    store_put_u64(op_val(op), received_at_s);
    return 0;
}

static int qos2_delete(struct store_batch *batch, enum store_db db, struct store_bytes owner,
                       uint16_t packet_id)
{
    int rc = check_qos2_args(batch, owner, packet_id);
    if (rc != 0)
        return rc;
    if (qos2_op(batch, OP_DEL, db, owner, packet_id, 0) == NULL)
        return batch->err;
    return 0;
}

int store_batch_put_qos2_in(struct store_batch *batch, struct store_bytes client_id,
                            uint16_t packet_id, uint64_t received_at_s)
{
    return qos2_put(batch, DB_QOS2IN, client_id, packet_id, received_at_s);
}

int store_batch_delete_qos2_in(struct store_batch *batch, struct store_bytes client_id,
                               uint16_t packet_id)
{
    return qos2_delete(batch, DB_QOS2IN, client_id, packet_id);
}

int store_batch_put_bridge_qos2_in(struct store_batch *batch, struct store_bytes bridge,
                                   uint16_t packet_id, uint64_t received_at_s)
{
    return qos2_put(batch, DB_BRIDGE_QOS2IN, bridge, packet_id, received_at_s);
}

int store_batch_delete_bridge_qos2_in(struct store_batch *batch, struct store_bytes bridge,
                                      uint16_t packet_id)
{
    return qos2_delete(batch, DB_BRIDGE_QOS2IN, bridge, packet_id);
}

/* Counter names are [a-z0-9_.]{1,64}: printable in solctl and never
 * colliding with the fixed meta keys, which have no "c." prefix. */
static bool counter_name_valid(const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > COUNTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int store_batch_set_counter(struct store_batch *batch, const char *name, uint64_t value)
{
    if (batch->err != 0)
        return batch->err;
    if (!counter_name_valid(name))
        return STORE_ERR_INVALID;
    size_t plen = strlen(META_COUNTER), nlen = strlen(name);
    struct store_op *op = op_add(batch, OP_PUT, DB_META, plen + nlen, 8);
    if (op == NULL)
        return batch->err;
    memcpy(op->data, META_COUNTER, plen);
    memcpy(op->data + plen, name, nlen);
    store_put_u64(op_val(op), value);
    return 0;
}
