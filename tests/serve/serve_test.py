#!/usr/bin/env python3
"""tests/serve/serve_test.py BUILD CASE — qrun --serve on loopback, on the CPU backend, over small
synthetic models that qplan writes at test time (docs/serving.md). Every wait is bounded in time
and every loop in count. Exit 0 pass, 1 fail, 77 skipped (the reason printed).

  api         the official openai client drives every endpoint, streaming and not: models, chat and
              completions (usage and finish_reason in every answer, streamed text == whole text),
              sampling options, frequency and presence penalties, seed, stop as string and list, max_completion_tokens, logprobs and
              top_logprobs, prompt reuse (cached_tokens), /health, /metrics
  concurrent  8 greedy requests at once (half streamed) each return what they return alone
  disconnect  a client gone mid-stream (and one gone while waiting for a whole answer) frees its
              slot: the next request gets it at once, and generation stops
  bad_input   malformed JSON, wrong types and ranges, unknown role, n > 1, unsupported fields -> 400 naming
              the field; body over the limit -> 413; prompt past the context -> 400 with both
              numbers; max_tokens past the context -> capped, "length"; 404, 405; a client
              trickling its headers a byte a second while others are served; the server stays up
  auth        --api-key: no key or a wrong one -> 401 (the openai client's AuthenticationError),
              the right one works, /health needs none
  queue       a full queue -> 503 with Retry-After, the accepted requests complete
  sigterm     SIGTERM: no new connections, /health 503 on a kept connection, a running stream ends
              cleanly within --shutdown-timeout, exit status 0
  soak        16 clients looping (QP_SERVE_SOAK_S seconds, default 20; the issue's 120 with
              QP_SERVE_SOAK_S=120): no error; open files and RSS flat after warm-up (bounds below)
  nginx       docs/serving.md's nginx configuration, as written, in front of two replicas: both
              serve; one stopped, the other takes every request
  bench       bench/serve_load.py runs against a server (a short run: it works, numbers sane)
  model       (label model: the default model, skipped without it) /health is 503 while the real
              model loads; a real ChatML conversation: a sensible answer, the next turn reuses it
"""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD, CASE = sys.argv[1], sys.argv[2]
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QRUN = os.path.join(BUILD, "runtime", "qrun")
QPLAN = os.path.join(BUILD, "compiler", "qplan")
NEEDS_OPENAI = {"api", "concurrent", "auth", "soak", "bench"}
failures = 0
servers = []  # every server started, stopped at the end whatever happens


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print(f"FAIL: {what}")
    return ok


def ensure_openai():
    """Re-runs this script under the venv that holds the openai client (scripts/serve-venv.sh)."""
    try:
        import openai  # noqa: F401
        return
    except ImportError:
        pass
    r = subprocess.run([os.path.join(SRC, "scripts", "serve-venv.sh"), os.path.join(BUILD, "serve-venv")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode == 77:
        skip(f"the openai client cannot be installed: {r.stderr.strip()}")
    if r.returncode != 0:
        print(f"FAIL: scripts/serve-venv.sh: {r.stderr.strip()}")
        sys.exit(1)
    py = r.stdout.strip().splitlines()[-1]
    os.execv(py, [py] + sys.argv)


def model(tmp, name, slots, ctx, embd=64, layers=2):
    """A synthetic Qwen2 model (ChatML template, 300 byte-level tokens) and its plan."""
    gguf, plan = os.path.join(tmp, f"{name}.gguf"), os.path.join(tmp, f"{name}.yaml")
    subprocess.run([QPLAN, "synth", "--arch", "qwen2", "--n-layer", str(layers), "--n-embd", str(embd), "--n-head",
                    "4", "--n-head-kv", "2", "--n-ff", str(2 * embd), "--n-vocab", "300", "--seed", "1", "-o", gguf],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([QPLAN, "compile", gguf, "-o", plan, "--ctx", str(ctx), "--slots", str(slots)], check=True,
                   stdout=subprocess.DEVNULL)
    return plan


class Server:
    """qrun PLAN --serve --port 0 ...: the port is read from its first line on stderr."""

    def __init__(self, tmp, plan, *args):
        self.log = os.path.join(tmp, f"serve-{time.monotonic_ns()}.log")
        self.logf = open(self.log, "w")
        self.p = subprocess.Popen([QRUN, plan, "--serve", "--port", "0", "-t", "1", *args], stdout=self.logf,
                                  stderr=subprocess.STDOUT)
        servers.append(self)
        self.port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
            elif self.p.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"the server did not start: {open(self.log).read()}")
        self.health = []  # /health's answers until the first 200 (503 while the plan loads)
        while time.monotonic() < deadline:
            self.health.append(get(self.port, "/health")[0])
            if self.health[-1] == 200:
                return
            time.sleep(0.02)
        raise RuntimeError(f"the server did not become ready: {open(self.log).read()}")

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self.logf.close()
        return rc

    def client(self, key="none"):
        import openai
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key, max_retries=0, timeout=60)


def request(port, method, path, body=None, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    c.close()
    return out


def get(port, path, headers=None):
    try:
        return request(port, "GET", path, headers=headers, timeout=5)
    except OSError:
        return (0, {}, b"")


def metric(port, name, headers=None):
    text = get(port, "/metrics", headers)[2].decode()
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def error_of(body):
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return {}


# --- cases ---

def case_api(tmp):
    plan = model(tmp, "m", 4, 512)
    s = Server(tmp, plan)
    c = s.client()
    models = c.models.list()
    check(len(models.data) == 1 and models.data[0].id == "m.gguf", f"models: {models}")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]

    def answer_ok(r, what, max_tokens=None):
        ch = r.choices[0]
        ok = check(ch.finish_reason in ("stop", "length"), f"{what}: finish_reason {ch.finish_reason}")
        ok &= check(r.usage is not None and r.usage.prompt_tokens > 0 and
                    r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"{what}: usage {r.usage}")
        if max_tokens is not None:
            ok &= check(r.usage.completion_tokens <= max_tokens, f"{what}: {r.usage.completion_tokens} > {max_tokens}")
        return ok

    r = c.chat.completions.create(model="any", messages=msgs, max_tokens=12, temperature=0)
    answer_ok(r, "chat", 12)
    whole = r.choices[0].message.content
    check(r.object == "chat.completion" and r.choices[0].message.role == "assistant", f"chat shape: {r}")
    chunks = list(c.chat.completions.create(model="any", messages=msgs, max_tokens=12, temperature=0, stream=True))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check(streamed == whole, f"chat stream {streamed!r} != whole {whole!r}")
    check(chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason and chunks[-1].usage is not None and
          chunks[-1].usage.completion_tokens == r.usage.completion_tokens, f"chat stream end: {chunks[-1]}")
    check(chunks[0].choices[0].delta.role == "assistant", "chat stream: the first chunk names the role")

    r = c.completions.create(model="any", prompt="abc def", max_tokens=8, temperature=0, logprobs=3)
    answer_ok(r, "completion", 8)
    lp = r.choices[0].logprobs
    check(lp is not None and len(lp.tokens) == r.usage.completion_tokens == len(lp.token_logprobs) and
          all(x <= 0 for x in lp.token_logprobs), f"completion logprobs: {lp}")
    chunks = list(c.completions.create(model="any", prompt="abc def", max_tokens=8, temperature=0, stream=True))
    streamed = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    check(streamed == r.choices[0].text, f"completion stream {streamed!r} != {r.choices[0].text!r}")
    check(chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason and chunks[-1].usage is not None,
          f"completion stream end: {chunks[-1]}")
    r2 = c.completions.create(model="any", prompt=[97, 98, 99], max_tokens=3, temperature=0)
    answer_ok(r2, "completion from token ids", 3)
    check(r2.usage.prompt_tokens == 3, f"token-id prompt: {r2.usage}")

    r = c.chat.completions.create(model="any", messages=msgs, max_tokens=6, temperature=0, logprobs=True,
                                  top_logprobs=3)
    answer_ok(r, "chat logprobs", 6)
    content = r.choices[0].logprobs.content
    check(len(content) == r.usage.completion_tokens, f"chat logprobs: {len(content)} entries")
    for e in content:
        tops = [t.logprob for t in e.top_logprobs]
        check(len(tops) == 3 and tops == sorted(tops, reverse=True) and abs(e.logprob - tops[0]) < 1e-6 and
              e.logprob <= 0, f"greedy token's logprob {e.logprob} vs top {tops}")
    chunks = list(c.chat.completions.create(model="any", messages=msgs, max_tokens=6, temperature=0, logprobs=True,
                                            top_logprobs=2, stream=True))
    n_lp = sum(len(ch.choices[0].logprobs.content) for ch in chunks if ch.choices and ch.choices[0].logprobs)
    check(n_lp == r.usage.completion_tokens, f"streamed logprobs: {n_lp} entries")

    opts = dict(model="any", messages=msgs, max_tokens=10, temperature=0.9, top_p=0.9, seed=42,
                extra_body={"top_k": 20, "min_p": 0.05})
    a, b = c.chat.completions.create(**opts), c.chat.completions.create(**opts)
    check(a.choices[0].message.content == b.choices[0].message.content, "the same seed gives the same text")

    # stop strings: cut the greedy answer where a piece of it first appears
    base = c.completions.create(model="any", prompt="stop test", max_tokens=16, temperature=0).choices[0].text
    piece = next((base[i:i + 2] for i in range(2, len(base) - 2) if "\ufffd" not in base[i:i + 2]), None)
    if check(piece is not None, f"no stop piece in {base!r}"):
        for stop in (piece, [piece, "\u2603never"]):
            r = c.completions.create(model="any", prompt="stop test", max_tokens=16, temperature=0, stop=stop)
            check(r.choices[0].text == base[:base.index(piece)] and r.choices[0].finish_reason == "stop",
                  f"stop {stop!r}: {r.choices[0].text!r} from {base!r}")
    # frequency and presence penalties: the random model's greedy loop is broken by them
    plain = c.completions.create(model="any", prompt="loop", max_tokens=24, temperature=0, extra_body={"ignore_eos": True})
    pen = c.completions.create(model="any", prompt="loop", max_tokens=24, temperature=0, frequency_penalty=2.0,
                               presence_penalty=1.0, extra_body={"ignore_eos": True})
    check(pen.choices[0].text != plain.choices[0].text, f"penalties changed nothing: {plain.choices[0].text!r}")
    r = c.chat.completions.create(model="any", messages=msgs, max_completion_tokens=3, temperature=0)
    check(r.usage.completion_tokens <= 3, f"max_completion_tokens 3: {r.usage}")

    # prompt reuse: the next turn of a conversation finds the first turn in its slot's cache
    first = c.chat.completions.create(model="any", messages=[{"role": "user", "content": "Tell me"}], max_tokens=6,
                                      temperature=0)
    turn2 = [{"role": "user", "content": "Tell me"}, {"role": "assistant", "content": first.choices[0].message.content},
             {"role": "user", "content": "More"}]
    second = c.chat.completions.create(model="any", messages=turn2, max_tokens=4, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    check(cached >= first.usage.prompt_tokens, f"reuse: {cached} cached of {second.usage.prompt_tokens}, "
                                               f"the first turn's prompt was {first.usage.prompt_tokens}")
    print(f"reuse: the second turn found {cached} of its {second.usage.prompt_tokens} prompt tokens cached")
    check(get(s.port, "/health")[0] == 200, "/health")
    text = get(s.port, "/metrics")[2].decode()
    for name in ("qrun_requests_total{code=\"200\"}", "qrun_prompt_tokens_total", "qrun_generated_tokens_total",
                 "qrun_prompt_tokens_reused_total", "qrun_time_to_first_token_seconds_bucket",
                 "qrun_inter_token_latency_seconds_bucket", "qrun_slots_busy", "qrun_queue_depth"):
        check(name in text, f"/metrics has no {name}")
    check(metric(s.port, 'qrun_requests_total{code="200"}') >= 15, "requests counted")
    check(metric(s.port, "qrun_prompt_tokens_reused_total") >= cached, "reused tokens counted")
    check(s.stop() == 0, "exit status after SIGTERM")


PROMPTS = ["The cat", "def main(", "Once upon a time", "1, 2, 3,", "SELECT * FROM", "Hello, world",
           "import numpy as", "Dear Sir"]


def one(c, i, stream):
    """Prompt i greedy, as (text, finish_reason, completion tokens)."""
    if i % 2:
        kw = dict(model="any", messages=[{"role": "user", "content": PROMPTS[i]}], max_tokens=24, temperature=0)
        if not stream:
            r = c.chat.completions.create(**kw)
            return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens
        chunks = list(c.chat.completions.create(**kw, stream=True))
        return ("".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices),
                chunks[-1].choices[0].finish_reason, chunks[-1].usage.completion_tokens)
    kw = dict(model="any", prompt=PROMPTS[i], max_tokens=24, temperature=0)
    if not stream:
        r = c.completions.create(**kw)
        return r.choices[0].text, r.choices[0].finish_reason, r.usage.completion_tokens
    chunks = list(c.completions.create(**kw, stream=True))
    return ("".join(ch.choices[0].text for ch in chunks if ch.choices), chunks[-1].choices[0].finish_reason,
            chunks[-1].usage.completion_tokens)


def case_concurrent(tmp):
    plan = model(tmp, "m", 8, 256, embd=128)
    s = Server(tmp, plan)
    alone = [one(s.client(), i, False) for i in range(8)]
    check(s.stop() == 0, "exit status")
    # a fresh server, so that no slot holds a prompt already: all 8 prefill and decode together
    s = Server(tmp, plan)
    c = s.client()
    start = threading.Barrier(8)

    def run(i):
        start.wait(10)
        return one(c, i, i % 4 >= 2)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        together = list(ex.map(run, range(8)))
    for i in range(8):
        check(together[i] == alone[i], f"prompt {i}: together {together[i]!r} != alone {alone[i]!r}")
    busy = metric(s.port, "qrun_slots_busy")
    check(busy == 0, f"slots busy after: {busy}")
    print(f"concurrent: 8 requests together == alone ({sum(a[2] for a in alone)} tokens)")
    check(s.stop() == 0, "exit status")


def recv_until(sk, marker, limit, chunk=65536):
    """Reads sk until marker arrives, the peer closes, or limit bytes; closes sk; the bytes."""
    got = b""
    while marker not in got and len(got) < limit:
        more = sk.recv(chunk)
        if not more:
            break
        got += more
    sk.close()
    return got


def raw_post(port, path, body):
    """A socket with a request sent (and nothing read yet)."""
    data = json.dumps(body).encode()
    sk = socket.create_connection(("127.0.0.1", port), timeout=30)
    sk.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sk


def case_disconnect(tmp):
    # big enough that a 3,000-token generation takes many seconds on one thread
    plan = model(tmp, "big", 1, 4096, embd=256, layers=4)
    s = Server(tmp, plan)
    # ignore_eos: the random model cannot end it early
    long_req = {"prompt": "Once", "max_tokens": 3000, "temperature": 0, "stream": True, "ignore_eos": True}
    t0 = time.monotonic()
    sk = raw_post(s.port, "/v1/completions", long_req)
    got = b""
    while got.count(b"data: ") < 4 and time.monotonic() - t0 < 30:
        got += sk.recv(65536)
    check(b"finish_reason\":\"" not in got, "the long stream ended before the disconnect: inconclusive")
    gen0 = metric(s.port, "qrun_generated_tokens_total")
    sk.close()
    t1 = time.monotonic()
    st, _, body = request(s.port, "POST", "/v1/completions", {"prompt": "Next", "max_tokens": 4, "temperature": 0},
                          timeout=30)
    waited = time.monotonic() - t1
    check(st == 200 and waited < 3, f"the next request: {st} after {waited:.2f} s (the slot should be free at once)")
    gen1 = metric(s.port, "qrun_generated_tokens_total")
    time.sleep(0.3)
    gen2 = metric(s.port, "qrun_generated_tokens_total")
    check(gen1 == gen2 and gen1 - gen0 < 100, f"generation went on after the disconnect: {gen0} {gen1} {gen2}")
    check(metric(s.port, "qrun_slots_busy") == 0, "slot still busy")
    print(f"disconnect: the next request took {waited:.2f} s; {gen1 - gen0:.0f} tokens after the hang-up")
    # a client that waits for a whole answer and goes away
    sk = raw_post(s.port, "/v1/completions", dict(long_req, stream=False))
    time.sleep(0.5)
    sk.close()
    t1 = time.monotonic()
    st, _, _ = request(s.port, "POST", "/v1/completions", {"prompt": "Next", "max_tokens": 4, "temperature": 0},
                       timeout=30)
    waited = time.monotonic() - t1
    check(st == 200 and waited < 3, f"after a non-streamed hang-up: {st} after {waited:.2f} s")
    check(s.stop() == 0, "exit status")


def case_bad_input(tmp):
    plan = model(tmp, "m", 2, 128)
    s = Server(tmp, plan)
    p = s.port
    chat = "/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    cases = [
        (chat, b'{"messages": [', 400, None, "malformed JSON"),
        (chat, b'[1, 2]', 400, None, "JSON object"),
        (chat, {"messages": "hi"}, 400, "messages", "list"),
        (chat, {}, 400, "messages", "missing"),
        (chat, {"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role", "wizard"),
        (chat, {"messages": [{"role": 3, "content": "x"}]}, 400, "messages[0].role", "string"),
        (chat, {"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", "string"),
        (chat, {"messages": msgs, "temperature": "hot"}, 400, "temperature", "number"),
        (chat, {"messages": msgs, "temperature": 7}, 400, "temperature", "[0, 2]"),
        (chat, {"messages": msgs, "max_tokens": -1}, 400, "max_tokens", "integer"),
        (chat, {"messages": msgs, "max_tokens": 1.5}, 400, "max_tokens", "integer"),
        (chat, {"messages": msgs, "stream": "yes"}, 400, "stream", "true or false"),
        (chat, {"messages": msgs, "stop": 3}, 400, "stop", "string"),
        (chat, {"messages": msgs, "n": 2}, 400, "n", "n = 1"),
        (chat, {"messages": msgs, "frequency_penalty": 3}, 400, "frequency_penalty", "[-2, 2]"),
        (chat, {"messages": msgs, "presence_penalty": "x"}, 400, "presence_penalty", "number"),
        (chat, {"messages": msgs, "top_logprobs": 3}, 400, "top_logprobs", "logprobs"),
        (chat, {"messages": msgs, "tools": [{"type": "function"}]}, 400, "tools", "not supported"),
        ("/v1/completions", {"prompt": 5}, 400, "prompt", "string"),
        ("/v1/completions", {"prompt": "x", "logprobs": 9}, 400, "logprobs", "[0, 5]"),
        ("/v1/completions", {"prompt": "x", "echo": True}, 400, "echo", "not supported"),
        ("/v1/completions", {"prompt": [1, 99999]}, 400, "prompt", "vocabulary"),
        ("/v1/completions", {"prompt": "x" * 400}, 400, "prompt", "128 positions"),
    ]
    for path, body, status, param, text in cases:
        st, _, b = request(p, "POST", path, body)
        e = error_of(b)
        check(st == status and e.get("param") == param and text in e.get("message", "") and "type" in e,
              f"{body!r:.60}: {st} {b[:200]!r}")
    st, _, b = request(p, "POST", "/v1/completions", {"prompt": "x" * 400})
    check(re.search(r"\b400 tokens\b.*\b128 positions\b", error_of(b).get("message", "")) is not None,
          f"prompt past the context names both numbers: {b!r}")
    # max_tokens past the context: capped at the context, finish_reason "length" (ignore_eos: the
    # random model cannot end it earlier)
    st, _, b = request(p, "POST", "/v1/completions", {"prompt": "x" * 100, "max_tokens": 100000, "temperature": 0,
                                                      "ignore_eos": True})
    r = json.loads(b) if st == 200 else {}
    check(st == 200 and r["choices"][0]["finish_reason"] == "length" and
          r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] == 128, f"max_tokens capped: {st} {b[:300]!r}")
    # bodies over the limit: declared (Content-Length) and chunked
    big = b'{"prompt": "' + b"x" * (1 << 20) + b'"}'
    # declared: the answer comes from the headers alone, before the body is sent (the server then
    # closes the connection, so the client must not insist on sending it)
    sk = socket.create_connection(("127.0.0.1", p), timeout=30)
    sk.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(big)}\r\n\r\n".encode())
    got = recv_until(sk, b"}}", 10000, 4096)
    check(got.startswith(b"HTTP/1.1 413") and b"limit" in got, f"a 1 MiB body declared: {got[:300]!r}")
    c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
    c.request("POST", "/v1/completions", body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
              headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = c.getresponse()
    check(r.status == 413, f"a chunked 1 MiB body: {r.status}")
    c.close()
    st, _, _ = request(p, "GET", "/v1/nothing")
    check(st == 404, f"unknown path: {st}")
    st, _, _ = request(p, "GET", chat)
    check(st == 405, f"GET on chat: {st}")
    # a client trickling its headers a byte a second while others are served
    trickle = socket.create_connection(("127.0.0.1", p), timeout=30)
    stop = threading.Event()

    def drip():
        for ch in b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n":
            if stop.wait(1.0):
                return
            try:
                trickle.sendall(bytes([ch]))
            except OSError:
                return

    th = threading.Thread(target=drip)
    th.start()
    time.sleep(1.5)
    worst = 0.0
    for i in range(5):
        t0 = time.monotonic()
        st, _, _ = request(p, "POST", "/v1/completions", {"prompt": f"q{i}", "max_tokens": 4, "temperature": 0})
        worst = max(worst, time.monotonic() - t0)
        check(st == 200, f"served while a client trickles: {st}")
    check(worst < 2, f"a request took {worst:.2f} s while a client trickled")
    stop.set()
    th.join(5)
    trickle.close()
    print(f"trickle: 5 requests served meanwhile, the slowest in {worst * 1000:.0f} ms")
    check(get(p, "/health")[0] == 200, "the server is up after the bad input")
    check(s.stop() == 0, "exit status")


def case_auth(tmp):
    import openai
    plan = model(tmp, "m", 2, 128)
    s = Server(tmp, plan, "--api-key", "s3cret")
    body = {"prompt": "x", "max_tokens": 2}
    for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}, {"Authorization": "Bearer s3cre"}):
        st, hd, b = request(s.port, "POST", "/v1/completions", body, headers=h)
        check(st == 401 and error_of(b).get("type") == "authentication_error", f"key {h}: {st}")
    check(get(s.port, "/v1/models")[0] == 401 and get(s.port, "/metrics")[0] == 401, "models/metrics need the key")
    check(get(s.port, "/health")[0] == 200, "/health needs no key")
    try:
        s.client("wrong").models.list()
        check(False, "a wrong key through the openai client was accepted")
    except openai.AuthenticationError:
        pass
    r = s.client("s3cret").completions.create(model="any", prompt="x", max_tokens=2)
    check(r.usage.completion_tokens <= 2, "the right key works")
    check(s.stop() == 0, "exit status")


def case_queue(tmp):
    plan = model(tmp, "big", 1, 2048, embd=256, layers=4)
    s = Server(tmp, plan, "--queue", "1")
    body = {"prompt": "Once", "max_tokens": 100, "temperature": 0, "ignore_eos": True}
    before = metric(s.port, 'qrun_requests_total{code="503"}')  # /health's while the plan loaded
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        res = list(ex.map(lambda i: request(s.port, "POST", "/v1/completions", body), range(6)))
    codes = sorted(r[0] for r in res)
    refused = [r for r in res if r[0] == 503]
    check(codes.count(200) >= 2 and len(refused) >= 1 and set(codes) <= {200, 503}, f"codes {codes}")
    check(all(r[1].get("Retry-After") == "1" and "retry" in error_of(r[2]).get("message", "") for r in refused),
          f"503 without Retry-After: {refused[:1]}")
    print(f"queue: {codes.count(200)} served, {len(refused)} refused with 503 + Retry-After")
    after = metric(s.port, 'qrun_requests_total{code="503"}')
    check(after - before == len(refused), f"503s counted: {after - before}, expected {len(refused)}")
    check(s.stop() == 0, "exit status")


def case_sigterm(tmp):
    plan = model(tmp, "big", 1, 4096, embd=256, layers=4)
    s = Server(tmp, plan, "--shutdown-timeout", "2")
    sk = raw_post(s.port, "/v1/completions", {"prompt": "Once", "max_tokens": 3000, "temperature": 0, "stream": True,
                                              "ignore_eos": True})
    got = b""
    while got.count(b"data: ") < 2:
        got += sk.recv(65536)
    keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)  # a connection made before
    keep.request("GET", "/health")
    r = keep.getresponse()
    r.read()
    check(r.status == 200, f"/health before SIGTERM: {r.status}")
    t0 = time.monotonic()
    s.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    keep.request("GET", "/health")  # a balancer's check on its kept connection: take me out
    r = keep.getresponse()
    r.read()
    keep.close()
    check(r.status == 503, f"/health after SIGTERM: {r.status}")
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        check(False, "a new connection was accepted after SIGTERM")
    except OSError:
        pass
    while time.monotonic() - t0 < 10:
        b = sk.recv(65536)
        if not b:
            break
        got += b
    took = time.monotonic() - t0
    # the raw bytes are HTTP/1.1 chunks: the last event, then the zero-length chunk that ends the body
    check(got.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n") and b'"finish_reason":"length"' in got,
          f"the stream did not end cleanly: {got[-300:]!r}")
    rc = s.stop()
    check(rc == 0 and took < 2 + 1.5, f"exit {rc}, the stream ended {took:.2f} s after SIGTERM (bound 2 s + a step)")
    print(f"sigterm: the running stream ended {took:.2f} s after SIGTERM (--shutdown-timeout 2), exit {rc}")


def rss_fds(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def case_soak(tmp):
    secs = float(os.environ.get("QP_SERVE_SOAK_S", "20"))
    plan = model(tmp, "m", 16, 256)
    s = Server(tmp, plan)
    c = s.client()
    errors, counts = [], [0] * 16
    t_end = time.monotonic() + secs
    samples = []

    def client(i):
        k = 0
        while time.monotonic() < t_end and k < 100000:
            k += 1
            try:
                one(c, (i + k) % 8, (i + k) % 3 == 0)
                counts[i] += 1
            except Exception as e:  # noqa: BLE001 - any failure is the test's finding
                errors.append(f"client {i}: {e!r}")
                return

    ths = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in ths:
        t.start()
    while time.monotonic() < t_end:
        samples.append(rss_fds(s.p.pid))
        time.sleep(min(1.0, secs / 20))
    for t in ths:
        t.join(60)
    samples.append(rss_fds(s.p.pid))
    check(not errors, f"errors: {errors[:3]}")
    warm = samples[len(samples) // 4]
    end = samples[-1]
    # after a quarter of the run every pool and arena has reached its size: open files may differ by
    # the connections in flight (16 clients), RSS by 16 MiB (glibc's per-thread arenas)
    check(end[1] - warm[1] <= 16, f"open files grew from {warm[1]} to {end[1]}")
    if os.environ.get("ASAN_OPTIONS"):
        # AddressSanitizer's quarantine holds freed memory (up to 256 MiB): RSS says nothing there;
        # its leak check at exit (the exit status below) does instead
        print("soak: RSS bound not checked under AddressSanitizer")
    else:
        check(end[0] - warm[0] <= 16 * 1024, f"RSS grew from {warm[0]} KiB to {end[0]} KiB")
    n = sum(counts)
    print(f"soak: {secs:.0f} s, 16 clients, {n} requests, no error; RSS {warm[0]} -> {end[0]} KiB, "
          f"open files {warm[1]} -> {end[1]} (after warm-up)")
    check(n >= 16, f"only {n} requests in {secs} s")
    check(s.stop() == 0, "exit status")


def nginx_conf_from_docs():
    """The ```nginx block of docs/serving.md."""
    doc = open(os.path.join(SRC, "docs", "serving.md")).read()
    m = re.search(r"```nginx\n(.*?)```", doc, re.S)
    return m.group(1) if m else None


def case_nginx(tmp):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not nginx:
        skip("nginx is not installed (scripts/deps.sh installs nginx-light)")
    conf = nginx_conf_from_docs()
    if not check(conf is not None, "docs/serving.md has no ```nginx block"):
        return
    plan = model(tmp, "m", 2, 256)
    a, b = Server(tmp, plan), Server(tmp, plan)
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        front = sk.getsockname()[1]
    # the documented ports (8081, 8082 behind 8080) become this test's free ones
    conf = conf.replace("127.0.0.1:8081", f"127.0.0.1:{a.port}").replace("127.0.0.1:8082", f"127.0.0.1:{b.port}")
    conf = conf.replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{front}")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    # what runs nginx as a user in a folder: pid, logs and temporary files there (not part of the set-up)
    wrapper = (f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log;\nevents {{}}\n"
               f"http {{\naccess_log off;\nclient_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\n"
               f"fastcgi_temp_path {tmp}/fastcgi;\nuwsgi_temp_path {tmp}/uwsgi;\nscgi_temp_path {tmp}/scgi;\n"
               f"{conf}\n}}\n")
    path = os.path.join(tmp, "nginx.conf")
    open(path, "w").write(wrapper)
    ng = subprocess.Popen([nginx, "-p", tmp, "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and get(front, "/health")[0] != 200:
            time.sleep(0.1)
        body = {"prompt": "hello", "max_tokens": 4, "temperature": 0}
        for i in range(8):
            st, _, r = request(front, "POST", "/v1/completions", body)
            check(st == 200, f"through nginx: {st} {r[:200]!r}")
        na = metric(a.port, 'qrun_requests_total{code="200"}')
        nb = metric(b.port, 'qrun_requests_total{code="200"}')
        check(na >= 2 and nb >= 2, f"both replicas serve: {na}, {nb} answers")
        sk = raw_post(front, "/v1/completions", dict(body, stream=True))
        got = recv_until(sk, b"[DONE]", 100000)
        check(b"data: [DONE]" in got, f"a stream through nginx: {got[-200:]!r}")
        check(a.stop() == 0, "replica a: exit status")
        ok = sum(request(front, "POST", "/v1/completions", body)[0] == 200 for _ in range(6))
        check(ok == 6, f"with one replica down, {ok} of 6 requests through nginx succeeded")
        print(f"nginx: 8 requests over two replicas ({na:.0f} + {nb:.0f}), a stream, then 6 with one replica down")
    finally:
        ng.send_signal(signal.SIGQUIT)
        try:
            ng.wait(10)
        except subprocess.TimeoutExpired:
            ng.kill()
        b.stop()
        a.stop()


def case_bench(tmp):
    plan = model(tmp, "m", 4, 256)
    s = Server(tmp, plan)
    out = os.path.join(tmp, "bench.json")
    r = subprocess.run([sys.executable, os.path.join(SRC, "bench", "serve_load.py"), "--url",
                        f"http://127.0.0.1:{s.port}/v1", "--concurrency", "1,4", "--prompt-tokens", "32",
                        "--gen-tokens", "16", "--requests-per-client", "2", "--json", out],
                       capture_output=True, text=True, timeout=300)
    print(r.stdout + r.stderr)
    check(r.returncode == 0, f"serve_load.py exited {r.returncode}")
    if r.returncode == 0:
        rows = json.load(open(out))["rows"]
        check([x["concurrency"] for x in rows] == [1, 4] and all(x["gen_tok_s"] > 0 and x["errors"] == 0 and
                                                                 x["ttft_p50_ms"] <= x["ttft_p99_ms"] for x in rows),
              f"rows {rows}")
    check(s.stop() == 0, "exit status")


def case_model(tmp):
    gguf = os.environ.get("QP_MODEL") or os.path.expanduser("~/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    if not os.path.exists(gguf):
        skip("the default model is absent (scripts/fetch-model.sh, or set QP_MODEL)")
    plan = os.path.join(tmp, "real.yaml")
    subprocess.run([QPLAN, "compile", gguf, "-o", plan, "--ctx", "512", "--slots", "2"], check=True,
                   stdout=subprocess.DEVNULL)
    s = Server(tmp, plan)
    check(503 in s.health, f"/health while the model loaded: {s.health} (expected 503s before the 200)")
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    r = get(s.port, "/v1/models")
    st, _, b = request(s.port, "POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 8, "temperature": 0})
    a = json.loads(b) if st == 200 else {}
    text = a.get("choices", [{}])[0].get("message", {}).get("content", "")
    check(st == 200 and "Paris" in text, f"the real model's answer: {st} {b[:300]!r}")
    msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": "And of Italy?"}]
    st, _, b = request(s.port, "POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 8, "temperature": 0})
    a2 = json.loads(b) if st == 200 else {}
    cached = a2.get("usage", {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)
    check(st == 200 and "Rome" in a2["choices"][0]["message"]["content"] and
          cached >= a["usage"]["prompt_tokens"], f"the next turn: {b[:400]!r}")
    print(f"model: {s.health.count(503)} 503s while loading; {text!r}, then {a2['choices'][0]['message']['content']!r} "
          f"with {cached} of {a2['usage']['prompt_tokens']} prompt tokens cached; {r[0]}")
    check(s.stop() == 0, "exit status")


def main():
    if not os.access(QRUN, os.X_OK):
        print(f"FAIL: {QRUN} not built")
        return 1
    if CASE in NEEDS_OPENAI:
        ensure_openai()
    fn = globals().get(f"case_{CASE}")
    if not fn:
        print(f"FAIL: unknown case {CASE}")
        return 1
    tmp = tempfile.mkdtemp(prefix=f"qrun-serve-{CASE}-")
    t0 = time.monotonic()
    try:
        fn(tmp)
    finally:
        for sv in servers:
            if sv.p.poll() is None:
                sv.p.kill()
                sv.p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{CASE}: {'FAILED' if failures else 'passed'} in {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
