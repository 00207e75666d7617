// k6: push to connections through @connections. Each virtual user opens a
// connection, learns its id from the "whoami" route, and posts to itself.
//   k6 run -e URL=ws://127.0.0.1:8080/dev -e MGMT=http://127.0.0.1:9090/dev -e VUS=64 post.js
import ws from "k6/ws";
import http from "k6/http";
import { check } from "k6";
import { Trend } from "k6/metrics";

const url = __ENV.URL || "ws://127.0.0.1:8080/dev";
const mgmt = __ENV.MGMT || "http://127.0.0.1:9090/dev";
const posts = parseInt(__ENV.POSTS || "1000", 10);
const seconds = parseInt(__ENV.SECONDS || "60", 10); // upper bound per user
const delivery = new Trend("post_delivery", true);

export const options = {
  vus: Number(__ENV.VUS || 64),
  iterations: Number(__ENV.VUS || 64),
};

export default function () {
  ws.connect(url, {}, (socket) => {
    let id = null;
    let left = posts;
    const post = () => {
      const res = http.post(`${mgmt}/@connections/${encodeURIComponent(id)}`, String(Date.now()));
      check(res, { "200": (r) => r.status === 200 });
    };
    socket.on("open", () => socket.send(JSON.stringify({ action: "whoami" })));
    socket.setTimeout(() => socket.close(), seconds * 1000);
    socket.on("message", (data) => {
      if (id === null) {
        id = JSON.parse(data).connectionId;
      } else {
        delivery.add(Date.now() - Number(data));
        left--;
      }
      if (left > 0) post();
      else socket.close();
    });
  });
}
