// mqtt_client.js - one MQTT.js client for tests/integration/test_websockets.py
// and test_mqtt5_js.py.
//
// usage: NODE_PATH=BUILD/node/node_modules node mqtt_client.js '<json spec>'
// spec: {url, options (MQTT.js connect options; "ca" is a file path),
//        subscribe: [[filter, qos, {nl, rap, rh}?], ...],
//        subscribe_properties: MQTT 5 SUBSCRIBE properties (e.g. subscriptionIdentifier),
//        publish: [[topic, payload, qos, retain, {properties}?], ...]
//        (payload: a string, or {size, byte} for size bytes of that value;
//        a correlationData property is given as a latin1 string),
//        expect: messages to wait for before ending, timeout_ms,
//        allow_errors: report PUBACK/SUBACK failure codes as events instead of failing,
//        stay: once published and expected messages are in, print "ready" and
//        keep the connection until killed}
// Prints one JSON object per line: {"event": "connect", "sessionPresent",
// "reasonCode", "properties"}, {"event": "subscribed", "granted"},
// {"event": "ack", "cmd", "messageId", "reasonCode", "granted"} (PUBACK, PUBREC,
// SUBACK, UNSUBACK, DISCONNECT received; "granted": SUBACK's reason codes; on a
// refusal MQTT.js's own "subscribed" list keeps the QoS asked for), {"event": "published"},
// {"event": "message", "topic", "qos", "retain", "len", "sha1", "text", "properties"}
// ("reasonCode", "properties", "retain" and "ack" events with protocolVersion 5 only),
// and finally {"event": "done"} (exit 0) or {"event": "error", "message"} (exit 1).
// Not for: assertions (the Python test makes them).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const mqtt = require('mqtt');

const spec = JSON.parse(process.argv[2]);
const options = Object.assign({reconnectPeriod: 0, connectTimeout: 10000}, spec.options || {});
if (options.ca) options.ca = fs.readFileSync(options.ca);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message) {
  emit({event: 'error', message: String(message)});
  process.exit(1);
}

function payloadOf(p) {
  return typeof p === 'string' ? p : Buffer.alloc(p.size, p.byte);
}

const timer = setTimeout(() => fail('timed out after ' + spec.timeout_ms + ' ms'),
                         spec.timeout_ms || 10000);
const client = mqtt.connect(spec.url, options);
let received = 0;
let isFinished = false;
let isReady = false;
const isV5 = options.protocolVersion === 5; // MQTT 5 fields in the events

// Ends after the current event: a QoS 1/2 message's PUBACK / PUBREC, which
// MQTT.js sends once the 'message' handlers return, leaves before DISCONNECT.
function finish() {
  if (isFinished) return;
  isFinished = true;
  setImmediate(() => client.end(false, () => {
    clearTimeout(timer);
    emit({event: 'done'});
    process.exit(0);
  }));
}

function maybeFinish(published) {
  if (!published || received < (spec.expect || 0)) return;
  if (!spec.stay) return finish();
  if (!isReady) emit({event: 'ready'});
  isReady = true;
}

// Buffers (Correlation Data, Authentication Data) as latin1 strings.
function jsonable(props) {
  if (!props) return null;
  const out = {};
  for (const [k, v] of Object.entries(props))
    out[k] = Buffer.isBuffer(v) ? v.toString('latin1') : v;
  return out;
}

function publishAll(done) {
  const list = spec.publish || [];
  let left = list.length;
  if (left === 0) return done();
  for (const [topic, payload, qos, retain, extra] of list) {
    const opts = Object.assign({qos: qos, retain: !!retain}, extra || {});
    if (opts.properties && typeof opts.properties.correlationData === 'string') {
      opts.properties = Object.assign({}, opts.properties, {
        correlationData: Buffer.from(opts.properties.correlationData, 'latin1')});
    }
    client.publish(topic, payloadOf(payload), opts, (err) => {
      if (err && !(spec.allow_errors && err.code)) fail('publish: ' + err.message);
      if (err) emit({event: 'publish_error', topic: topic, code: err.code});
      if (--left === 0) done();
    });
  }
}

let isPublished = false;
client.on('connect', (ack) => {
  const ev = {event: 'connect', sessionPresent: ack.sessionPresent};
  if (isV5) Object.assign(ev, {reasonCode: ack.reasonCode || 0, properties: jsonable(ack.properties)});
  emit(ev);
  const subs = spec.subscribe || [];
  const afterSubscribe = () => publishAll(() => {
    isPublished = true;
    emit({event: 'published'});
    maybeFinish(true);
  });
  if (subs.length === 0) return afterSubscribe();
  const filters = {};
  for (const [filter, qos, opts] of subs) filters[filter] = Object.assign({qos: qos}, opts || {});
  const subOpts = spec.subscribe_properties ? {properties: spec.subscribe_properties} : {};
  client.subscribe(filters, subOpts, (err, granted) => {
    if (err && !spec.allow_errors) fail('subscribe: ' + err.message);
    emit({event: 'subscribed', granted: (granted || []).map((g) => g.qos)});
    afterSubscribe();
  });
});
client.on('message', (topic, message, packet) => {
  received++;
  const ev = {event: 'message', topic: topic, qos: packet.qos, len: message.length,
              sha1: crypto.createHash('sha1').update(message).digest('hex'),
              text: message.length <= 64 ? message.toString('latin1') : null};
  if (isV5) Object.assign(ev, {retain: !!packet.retain, properties: jsonable(packet.properties)});
  emit(ev);
  maybeFinish(isPublished);
});
client.on('packetreceive', (packet) => {
  if (isV5 && ['puback', 'pubrec', 'suback', 'unsuback', 'disconnect'].includes(packet.cmd)) {
    emit({event: 'ack', cmd: packet.cmd, messageId: packet.messageId,
          reasonCode: packet.reasonCode || 0, granted: packet.granted || null});
  }
});
// Once end() has sent DISCONNECT, the broker closes the socket: a write of
// ws's own close frame may then meet EPIPE, which says nothing about MQTT.
client.on('error', (err) => {
  if (!isFinished) fail(err.message);
});
client.on('close', () => {
  if (!isFinished) fail('connection closed');
});
