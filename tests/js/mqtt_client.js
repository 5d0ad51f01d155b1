// mqtt_client.js - one MQTT.js client for tests/integration/test_websockets.py.
//
// usage: NODE_PATH=BUILD/node/node_modules node mqtt_client.js '<json spec>'
// spec: {url, options (MQTT.js connect options; "ca" is a file path),
//        subscribe: [[filter, qos], ...], publish: [[topic, payload, qos, retain], ...]
//        (payload: a string, or {size, byte} for size bytes of that value),
//        expect: messages to wait for before ending, timeout_ms}
// Prints one JSON object per line: {"event": "connect", "sessionPresent"},
// {"event": "subscribed", "granted"}, {"event": "published"},
// {"event": "message", "topic", "qos", "len", "sha1", "text"}, and finally
// {"event": "done"} (exit 0) or {"event": "error", "message"} (exit 1).
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

function finish() {
  if (isFinished) return;
  isFinished = true;
  client.end(false, () => {
    clearTimeout(timer);
    emit({event: 'done'});
    process.exit(0);
  });
}

function maybeFinish(published) {
  if (published && received >= (spec.expect || 0)) finish();
}

function publishAll(done) {
  const list = spec.publish || [];
  let left = list.length;
  if (left === 0) return done();
  for (const [topic, payload, qos, retain] of list) {
    client.publish(topic, payloadOf(payload), {qos: qos, retain: !!retain}, (err) => {
      if (err) fail('publish: ' + err.message);
      if (--left === 0) done();
    });
  }
}

let isPublished = false;
client.on('connect', (ack) => {
  emit({event: 'connect', sessionPresent: ack.sessionPresent});
  const subs = spec.subscribe || [];
  const afterSubscribe = () => publishAll(() => {
    isPublished = true;
    emit({event: 'published'});
    maybeFinish(true);
  });
  if (subs.length === 0) return afterSubscribe();
  const filters = {};
  for (const [filter, qos] of subs) filters[filter] = {qos: qos};
  client.subscribe(filters, (err, granted) => {
    if (err) fail('subscribe: ' + err.message);
    emit({event: 'subscribed', granted: granted.map((g) => g.qos)});
    afterSubscribe();
  });
});
client.on('message', (topic, message, packet) => {
  received++;
  emit({event: 'message', topic: topic, qos: packet.qos, len: message.length,
        sha1: crypto.createHash('sha1').update(message).digest('hex'),
        text: message.length <= 64 ? message.toString('latin1') : null});
  maybeFinish(isPublished);
});
// Once end() has sent DISCONNECT, the broker closes the socket: a write of
// ws's own close frame may then meet EPIPE, which says nothing about MQTT.
client.on('error', (err) => {
  if (!isFinished) fail(err.message);
});
client.on('close', () => {
  if (!isFinished) fail('connection closed');
});
