// A Node central system on ocpp-rpc with strict schema validation, for
// bench/gateway_throughput.py: what a user might pick instead of gridctl's gateway.
// Answers MeterValues / TransactionEvent with an empty result and Heartbeat with the time;
// strictMode validates every inbound call and outbound answer against the OCPP schemas
// ocpp-rpc ships. Loopback only; prints "port N" once listening; ends on SIGTERM/SIGINT.
'use strict';
const { RPCServer } = require('ocpp-rpc');

const version = process.env.GW_BENCH_OCPP || '1.6';
const protocol = version === '2.0.1' ? 'ocpp2.0.1' : 'ocpp1.6';

async function main() {
  const server = new RPCServer({ protocols: [protocol], strictMode: true });
  let invalid = 0;
  server.auth((accept) => accept({}));
  server.on('client', (client) => {
    client.on('strictValidationFailure', () => { invalid += 1; });
    client.handle('MeterValues', () => ({}));
    client.handle('TransactionEvent', () => ({}));
    client.handle('Heartbeat', () => ({ currentTime: new Date().toISOString() }));
  });
  const http = await server.listen(0, '127.0.0.1');
  process.stdout.write(`port ${http.address().port}\n`);
  const stop = async () => {
    process.stderr.write(`strict validation failures: ${invalid}\n`);
    await server.close({ awaitPending: false, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
