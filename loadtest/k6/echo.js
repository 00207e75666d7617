// k6: each virtual user sends {"action":"echo"} messages and times the replies.
//   k6 run -e URL=ws://127.0.0.1:8080/dev -e VUS=100 -e SECONDS=30 echo.js
import ws from "k6/ws";
import { check } from "k6";
import { Trend, Counter } from "k6/metrics";

const url = __ENV.URL || "ws://127.0.0.1:8080/dev";
const seconds = parseInt(__ENV.SECONDS || "30", 10);
const rtt = new Trend("echo_round_trip", true);
const replies = new Counter("echo_replies");

export const options = {
  vus: Number(__ENV.VUS || 10),
  iterations: Number(__ENV.VUS || 10),
};

export default function () {
  const res = ws.connect(url, {}, (socket) => {
    const send = () => socket.send(JSON.stringify({ action: "echo", data: String(Date.now()) }));
    socket.on("open", send);
    socket.on("message", (data) => {
      rtt.add(Date.now() - Number(data));
      replies.add(1);
      send();
    });
    socket.setTimeout(() => socket.close(), seconds * 1000);
  });
  check(res, { "101 Switching Protocols": (r) => r && r.status === 101 });
}
