// One k6 scenario: VUS virtual users POST one JSON body to URL for DURATION.
import http from "k6/http";
import { check } from "k6";

export const options = {
  vus: Number(__ENV.VUS || 8),
  duration: __ENV.DURATION || "10s",
  discardResponseBodies: false,
};

const body = open(__ENV.BODY_FILE);
const params = { headers: { "Content-Type": "application/json" } };

export default function () {
  const response = http.post(__ENV.URL, body, params);
  check(response, {
    "status 200": (r) => r.status === 200,
    "no errors": (r) => r.body && r.body.indexOf('"errors"') === -1,
  });
}
