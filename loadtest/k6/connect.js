// k6: open connections to a Portico stage and hold them idle.
//   k6 run -e URL=ws://127.0.0.1:8080/dev -e VUS=1000 -e HOLD=30 connect.js
import ws from "k6/ws";
import { check } from "k6";

const url = __ENV.URL || "ws://127.0.0.1:8080/dev";
const hold = Number(__ENV.HOLD || 30);

export const options = {
  vus: Number(__ENV.VUS || 100),
  iterations: Number(__ENV.VUS || 100),
};

export default function () {
  const res = ws.connect(url, {}, (socket) => {
    socket.setTimeout(() => socket.close(), hold * 1000);
  });
  check(res, { "101 Switching Protocols": (r) => r && r.status === 101 });
}
