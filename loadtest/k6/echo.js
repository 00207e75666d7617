// k6: each virtual user holds one connection and keeps DEPTH messages
// {"action":"echo","data":"<send time>"} in flight, timing the replies.
// A reply may be the data field (the echo example's mock route) or the
// whole message (a plain echo server).
//   k6 run -e URL=ws://127.0.0.1:8080/dev -e VUS=100 -e SECONDS=30 -e DEPTH=1 echo.js
import ws from "k6/ws";
import { check } from "k6";
import { Trend, Counter } from "k6/metrics";

const url = __ENV.URL || "ws://127.0.0.1:8080/dev";
const seconds = parseInt(__ENV.SECONDS || "30", 10);
const depth = parseInt(__ENV.DEPTH || "1", 10);
const action = __ENV.ACTION || "echo";
const rtt = new Trend("echo_round_trip", true);
const replies = new Counter("echo_replies");
const unexpected = new Counter("echo_unexpected");

export const options = {
  vus: Number(__ENV.VUS || 10),
  iterations: Number(__ENV.VUS || 10),
};

// sentAt reads the send time from a reply of either form.
function sentAt(reply) {
  if (reply.startsWith("{")) {
    try {
      return Number(JSON.parse(reply).data);
    } catch (e) {
      return NaN;
    }
  }
  return Number(reply);
}

export default function () {
  const res = ws.connect(url, {}, (socket) => {
    let running = true;
    const send = () => socket.send(JSON.stringify({ action, data: String(Date.now()) }));
    socket.on("open", () => {
      for (let i = 0; i < depth; i++) send();
    });
    socket.on("message", (data) => {
      const t = sentAt(data);
      if (Number.isFinite(t)) {
        rtt.add(Date.now() - t);
        replies.add(1);
      } else {
        unexpected.add(1);
      }
      if (running) send();
    });
    socket.setTimeout(() => {
      running = false;
      socket.close();
    }, seconds * 1000);
  });
  check(res, { "101 Switching Protocols": (r) => r && r.status === 101 });
}
