// Runs @connections operations with the official AWS SDK for JavaScript v3
// (ApiGatewayManagementApiClient) and prints one JSON line per operation.
//
// Usage:
//   node sdk_client.mjs '{"endpoint":"http://127.0.0.1:9090/prod","region":"us-east-1",
//     "ops":[{"op":"post","id":"abc=","data":"hello"},{"op":"get","id":"abc="},{"op":"delete","id":"abc="}]}'
//
// Per op, one of:
//   {"op":"post","ok":true,"result":{"status":200}}
//   {"op":"get","ok":true,"result":{"status":200,"connectedAt":"…Z","lastActiveAt":"…Z","identity":{"sourceIp":"…","userAgent":"…"}}}
//   {"op":"delete","ok":false,"name":"GoneException","status":410,"message":"…"}
//
// Optional fields: "dataBase64" instead of "data" on a post op (binary
// payload); at the top level "maxAttempts" (default 1, so the SDK does not
// retry and each op makes exactly one request) and "credentials"
// ({"accessKeyId":"…","secretAccessKey":"…"}, default portico/portico), the
// key the SDK signs every request with (SigV4, service execute-api).
//
// The exit status is 0 whatever the ops return; it is non-zero only when the
// arguments are unusable or the script itself fails.
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";

function usage(msg) {
  process.stderr.write(`sdk_client.mjs: ${msg}\n`);
  process.exit(2);
}

function iso(t) {
  if (t instanceof Date) {
    return Number.isNaN(t.getTime()) ? null : t.toISOString();
  }
  return t ?? null;
}

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

async function runOp(client, op) {
  const id = op.id;
  switch (op.op) {
    case "post": {
      const data =
        op.dataBase64 !== undefined
          ? Buffer.from(op.dataBase64, "base64")
          : Buffer.from(op.data ?? "", "utf8");
      const out = await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: data }));
      return { status: out.$metadata?.httpStatusCode };
    }
    case "get": {
      const out = await client.send(new GetConnectionCommand({ ConnectionId: id }));
      const identity = {};
      if (out.Identity?.SourceIp !== undefined) identity.sourceIp = out.Identity.SourceIp;
      if (out.Identity?.UserAgent !== undefined) identity.userAgent = out.Identity.UserAgent;
      return {
        status: out.$metadata?.httpStatusCode,
        connectedAt: iso(out.ConnectedAt),
        lastActiveAt: iso(out.LastActiveAt),
        identity,
      };
    }
    case "delete": {
      const out = await client.send(new DeleteConnectionCommand({ ConnectionId: id }));
      return { status: out.$metadata?.httpStatusCode };
    }
    default:
      throw Object.assign(new Error(`unknown op ${JSON.stringify(op.op)}`), { name: "UsageError" });
  }
}

async function main() {
  if (process.argv.length < 3) usage("missing JSON argument");
  let args;
  try {
    args = JSON.parse(process.argv[2]);
  } catch (err) {
    usage(`argument is not JSON: ${err.message}`);
  }
  if (typeof args?.endpoint !== "string" || !Array.isArray(args.ops)) {
    usage('argument needs "endpoint" (string) and "ops" (array)');
  }

  const client = new ApiGatewayManagementApiClient({
    endpoint: args.endpoint,
    region: args.region || "us-east-1",
    credentials: args.credentials ?? { accessKeyId: "portico", secretAccessKey: "portico" },
    maxAttempts: args.maxAttempts ?? 1,
  });

  for (const op of args.ops) {
    try {
      const result = await runOp(client, op);
      print({ op: op.op, ok: true, result });
    } catch (err) {
      print({
        op: op.op,
        ok: false,
        name: err?.name,
        status: err?.$metadata?.httpStatusCode,
        message: err?.message,
      });
    }
  }
  client.destroy();
}

main().catch((err) => {
  process.stderr.write(`sdk_client.mjs: ${err?.stack ?? err}\n`);
  process.exit(1);
});
