#!/usr/bin/env node
// Example hiveqd client: runs one statement through
// hiveq.v1.QueryService.Execute and prints the schema, each row (decoded
// from the columnar batches) and the call's final status.
//
//   node query.js ADDR "SELECT ..." [--connector C] [--database D]
//        [--conf k=v ...] [--fetch-size N] [--max-rows N] [--timeout SECONDS]
//
// Environment: HIVEQD_TOKEN is sent as "authorization: Bearer <token>";
// HIVEQD_TLS_CA (a PEM file) switches from plaintext to TLS;
// HIVEQD_PROTO_DIR overrides where proto/ is (default: ../../proto).
//
// Output (stdout): "schema: <name> <type>, ...", "status: ..." for each
// status event, "row: [...]" with each row as a JSON array (bigint as an
// exact number, binary as base64, NULL as null, NaN/Infinity as strings),
// and "end: OK, N rows". A failed call prints "error: ..." lines with the
// google.rpc.ErrorInfo on stderr. Exit status: 0 OK, 1 error, 2 usage,
// 130 cancelled (Ctrl-C cancels the call, and hiveqd cancels the query).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

function usage(msg) {
  if (msg) console.error(`query.js: ${msg}`);
  console.error('usage: node query.js ADDR "STATEMENT" [--connector C] [--database D] [--conf k=v ...] [--fetch-size N] [--max-rows N] [--timeout SECONDS]');
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      connector: { type: 'string', default: '' },
      database: { type: 'string', default: '' },
      conf: { type: 'string', multiple: true, default: [] },
      'fetch-size': { type: 'string', default: '0' },
      'max-rows': { type: 'string', default: '0' },
      timeout: { type: 'string', default: '0' },
    },
  });
} catch (e) {
  usage(e.message);
}
if (args.positionals.length !== 2) usage('want ADDR and STATEMENT');
const [addr, statement] = args.positionals;
const config = {};
for (const kv of args.values.conf) {
  const i = kv.indexOf('=');
  if (i <= 0) usage(`--conf ${kv}: want key=value`);
  config[kv.slice(0, i)] = kv.slice(i + 1);
}

// Load the API. keepCase keeps the proto's field names (row_count);
// longs as strings keep int64 exact; oneofs names the set member of a
// oneof (ExecuteResponse.event, ColumnVector.values).
const protoDir = process.env.HIVEQD_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto');
const packageDefinition = protoLoader.loadSync('hiveq/v1/query.proto', {
  includeDirs: [protoDir],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const hiveq = grpc.loadPackageDefinition(packageDefinition).hiveq.v1;

// The retry policy shared with the Go clients (UNAVAILABLE before any
// response is retried with backoff).
const serviceConfig = fs.readFileSync(path.join(__dirname, 'service-config.json'), 'utf8');

const credentials = process.env.HIVEQD_TLS_CA
  ? grpc.credentials.createSsl(fs.readFileSync(process.env.HIVEQD_TLS_CA))
  : grpc.credentials.createInsecure();
const client = new hiveq.QueryService(addr, credentials, {
  'grpc.service_config': JSON.stringify(JSON.parse(serviceConfig)),
});

const metadata = new grpc.Metadata();
if (process.env.HIVEQD_TOKEN) metadata.add('authorization', `Bearer ${process.env.HIVEQD_TOKEN.trim()}`);
const callOptions = {};
const timeout = Number(args.values.timeout);
if (!(timeout >= 0)) usage(`--timeout ${args.values.timeout}: want seconds >= 0`);
if (timeout > 0) callOptions.deadline = new Date(Date.now() + timeout * 1000);

const call = client.Execute({
  statement,
  connector: args.values.connector,
  database: args.values.database,
  config,
  fetch_size: Number(args.values['fetch-size']),
  max_rows: args.values['max-rows'],
  // Integers as fixed-width arrays, each string column as one UTF-8 buffer
  // plus offsets (see README, "Batch layouts").
  batch_layout: 'BATCH_LAYOUT_COMPACT',
}, metadata, callOptions);

let interrupted = false;
process.on('SIGINT', () => {
  interrupted = true;
  call.cancel(); // hiveqd cancels the query on HiveServer2
});

// --- decoding --------------------------------------------------------

// Row i is NULL when bit (i % 8) of byte (i / 8) of the bitmap is set; an
// empty bitmap means no NULLs in this batch's column.
function isNull(nulls, i) {
  const b = i >> 3;
  return b < nulls.length && (nulls[b] & (1 << (i & 7))) !== 0;
}

// jsonValue renders value i of a vector as JSON text.
function jsonValue(v, i) {
  switch (v.kind) {
    case 'int64_values':
    case 'fixed64_values': return String(v.values[i]); // a decimal string: exact, printed as a JSON number
    case 'double_values': return Number.isFinite(v.values[i]) ? JSON.stringify(v.values[i]) : JSON.stringify(String(v.values[i]));
    case 'bytes_values': return JSON.stringify(Buffer.from(v.values[i]).toString('base64'));
    // The compact layout's buffers: value i is data[offsets[i], offsets[i+1]).
    case 'string_buffer': return JSON.stringify(v.data.toString('utf8', v.offsets[i], v.offsets[i + 1]));
    case 'bytes_buffer': return JSON.stringify(v.data.subarray(v.offsets[i], v.offsets[i + 1]).toString('base64'));
    default: return JSON.stringify(v.values[i]); // bool, int32 (varint or fixed), string
  }
}

// vector prepares one ColumnVector of either layout: length is how many
// values it carries.
function vector(vec) {
  const kind = vec.values; // which oneof member is set, or undefined
  const nulls = vec.nulls || Buffer.alloc(0);
  if (kind === 'string_buffer' || kind === 'bytes_buffer') {
    const data = Buffer.from(vec[kind].data || []);
    const offsets = vec[kind].offsets;
    for (let i = 1; i < offsets.length; i++) {
      if (offsets[i] < offsets[i - 1] || offsets[i] > data.length) throw new Error(`bad offsets in a ${kind}`);
    }
    return { nulls, kind, data, offsets, length: Math.max(offsets.length - 1, 0) };
  }
  const values = kind ? vec[kind].values : [];
  return { nulls, kind, values, length: values.length };
}

let columns = [];
let rows = 0;

function onBatch(batch) {
  const n = batch.row_count;
  if (batch.columns.length !== columns.length) {
    throw new Error(`batch at row ${batch.start_row} has ${batch.columns.length} columns, the schema ${columns.length}`);
  }
  const vectors = batch.columns.map(vector);
  for (let r = 0; r < n; r++) {
    const cells = vectors.map((v) => {
      if (isNull(v.nulls, r)) return 'null';
      if (r >= v.length) throw new Error(`batch at row ${batch.start_row}: a column has ${v.length} values for ${n} rows`);
      return jsonValue(v, r);
    });
    console.log(`row: [${cells.join(',')}]`);
  }
  rows += n;
}

function onStatus(s) {
  const state = s.state.replace(/^QUERY_STATE_/, '');
  const progress = s.progress >= 0 ? ` ${Math.floor(s.progress * 100)}%` : '';
  const msg = s.message ? ` message=${JSON.stringify(s.message)}` : '';
  console.log(`status: ${state}${progress} query=${s.query_id} server=${s.server} epoch=${s.epoch} replica=${s.replica_id} rows=${s.rows}${msg}`);
}

call.on('data', (resp) => {
  try {
    switch (resp.event) {
      case 'status': onStatus(resp.status); break;
      case 'schema':
        columns = resp.schema.columns;
        console.log(`schema: ${columns.map((c) => `${c.name} ${c.type}`).join(', ')}`);
        break;
      case 'batch': onBatch(resp.batch); break;
      default: break; // an event this client does not know
    }
  } catch (e) {
    console.error(`error: malformed response: ${e.message}`);
    process.exitCode = 1;
    call.cancel();
  }
});

// --- the end of the call -----------------------------------------------

// google.rpc.Status and ErrorInfo, the parts this client reads, declared
// here so that no googleapis protos are needed.
const rpc = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } } } },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
  },
});
const RpcStatus = rpc.lookupType('google.rpc.Status');
const ErrorInfo = rpc.lookupType('google.rpc.ErrorInfo');

const codeNames = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

// errorDetails decodes the google.rpc.Status that gRPC servers put in the
// grpc-status-details-bin trailer, returning its ErrorInfo details.
function errorDetails(trailers) {
  const bin = trailers && trailers.get('grpc-status-details-bin');
  if (!bin || bin.length === 0) return [];
  const st = RpcStatus.decode(bin[0]);
  return st.details.map((any) => {
    if (any.type_url.endsWith('/google.rpc.ErrorInfo')) {
      return { type: 'ErrorInfo', info: ErrorInfo.decode(any.value) };
    }
    return { type: any.type_url };
  });
}

function finish(status) {
  if (status.code === grpc.status.OK) {
    console.log(`end: OK, ${rows} ${rows === 1 ? 'row' : 'rows'}`);
    client.close();
    return;
  }
  console.error(`error: ${codeNames[status.code] || status.code} (${status.code}): ${status.details}`);
  let details = [];
  try {
    details = errorDetails(status.metadata);
  } catch (e) {
    console.error(`  (undecodable grpc-status-details-bin: ${e.message})`);
  }
  for (const d of details) {
    if (d.type !== 'ErrorInfo') {
      console.error(`  detail ${d.type}`);
      continue;
    }
    const meta = d.info.metadata || {};
    const first = ['sql_state', 'error_code', 'server'].filter((k) => k in meta);
    const rest = Object.keys(meta).filter((k) => !first.includes(k)).sort();
    const fields = [`reason=${d.info.reason}`, `domain=${d.info.domain}`, ...[...first, ...rest].map((k) => `${k}=${meta[k]}`)];
    console.error(`  ErrorInfo ${fields.join(' ')}`);
  }
  client.close();
  if (process.exitCode === undefined || process.exitCode === 0) {
    process.exitCode = interrupted && status.code === grpc.status.CANCELLED ? 130 : 1;
  }
}

// 'status' carries the trailers for success and failure; 'error' repeats
// it for failures (and must have a listener). Rows still buffered in the
// stream are printed before the end: finish waits for 'end' too.
let finalStatus = null;
let ended = false;
const maybeFinish = () => { if (finalStatus && ended) finish(finalStatus); };
call.on('error', () => {});
call.on('status', (s) => { finalStatus = s; maybeFinish(); });
call.on('end', () => { ended = true; maybeFinish(); });
