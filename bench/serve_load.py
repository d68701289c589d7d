#!/usr/bin/env python3
"""bench/serve_load.py — load generator for `qrun PLAN --serve` (docs/serving.md, "Benchmark").

For each concurrency C (default 1, 4, 16, 64): C clients, each sending --requests-per-client
streaming /v1/completions requests one after another; each request a prompt of exactly
--prompt-tokens token ids (random, a different one per request, so that no slot's cache holds it)
and exactly --gen-tokens generated (ignore_eos, greedy). Reports per level: aggregate generated
tokens/s (all completion tokens over the level's wall time), time to first token p50/p99 (request
sent -> first SSE event), mean inter-token latency, errors.

Client: the official openai package's AsyncOpenAI (asyncio) when importable; otherwise (the GPU
machine has no PyPI) the same requests over asyncio streams from the standard library, said in the
output. --client forces one.

  bench/serve_load.py --url http://127.0.0.1:8080/v1 [--concurrency 1,4,16,64]
                      [--prompt-tokens 128] [--gen-tokens 128] [--requests-per-client 2]
                      [--api-key KEY] [--json OUT.json] [--client auto|openai|stdlib]
                      [--procs P]   (the clients spread over P processes)
"""
import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import time
import urllib.parse


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class OpenAIClient:
    name = "openai"

    def __init__(self, url, key):
        import openai
        self.c = openai.AsyncOpenAI(base_url=url, api_key=key or "none", max_retries=0, timeout=600)

    async def stream(self, prompt, n_gen):
        """(seconds to the first event, times of every event, completion tokens)."""
        t0 = time.perf_counter()
        times, usage = [], None
        s = await self.c.completions.create(model="any", prompt=prompt, max_tokens=n_gen, temperature=0,
                                            stream=True, extra_body={"ignore_eos": True})
        async for ch in s:
            times.append(time.perf_counter())
            if ch.usage:
                usage = ch.usage.completion_tokens
        return t0, times, usage

    async def close(self):
        await self.c.close()


class StdlibClient:
    """The same request over asyncio streams: HTTP/1.1, one connection per request, SSE lines."""
    name = "stdlib asyncio"

    def __init__(self, url, key):
        u = urllib.parse.urlparse(url)
        self.host, self.port, self.path, self.key = u.hostname, u.port or 80, u.path.rstrip("/"), key

    async def stream(self, prompt, n_gen):
        body = json.dumps({"model": "any", "prompt": prompt, "max_tokens": n_gen, "temperature": 0, "stream": True,
                           "ignore_eos": True}).encode()
        t0 = time.perf_counter()
        r, w = await asyncio.open_connection(self.host, self.port)
        auth = f"Authorization: Bearer {self.key}\r\n" if self.key else ""
        w.write(f"POST {self.path}/completions HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"{auth}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await w.drain()
        status = (await r.readline()).split()
        if len(status) < 2 or status[1] != b"200":
            raise RuntimeError(f"HTTP {status}")
        times, usage = [], None
        while True:  # headers, then chunk sizes and SSE lines; only "data: " lines matter
            line = await r.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                times.append(time.perf_counter())
                ch = json.loads(data)
                if ch.get("error"):
                    raise RuntimeError(ch["error"]["message"])
                if ch.get("usage"):
                    usage = ch["usage"]["completion_tokens"]
        w.close()
        return t0, times, usage

    async def close(self):
        pass


async def run_clients(client, conc, args, seed):
    """conc clients of args.requests_per_client requests each: raw samples and the wall span."""
    rng = random.Random(seed)
    ttft, itl, tokens, errors = [], [], 0, []

    async def one_client(i):
        nonlocal tokens
        for _ in range(args.requests_per_client):
            prompt = [rng.randrange(args.vocab) for _ in range(args.prompt_tokens)]
            try:
                t0, times, n = await client.stream(prompt, args.gen_tokens)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))
                continue
            if not times or n is None:
                errors.append("no events or no usage")
                continue
            ttft.append(times[0] - t0)
            if n > 1:
                itl.append((times[-1] - times[0]) / (n - 1))
            tokens += n

    t0 = time.time()
    await asyncio.gather(*(one_client(i) for i in range(conc)))
    return {"ttft": ttft, "itl": itl, "tokens": tokens, "errors": errors, "t0": t0, "t1": time.time()}


def make_client(args):
    if args.client in ("auto", "openai"):
        try:
            return OpenAIClient(args.url, args.api_key)
        except ImportError:
            if args.client == "openai":
                sys.exit("serve_load: the openai package is not installed (scripts/serve-venv.sh)")
    return StdlibClient(args.url, args.api_key)


def worker(job):
    """One process's share of a level (--procs): its own event loop and client."""
    args, conc, seed = job

    async def go():
        c = make_client(args)
        r = await run_clients(c, conc, args, seed)
        await c.close()
        return r

    return asyncio.run(go())


async def level(client, conc, args, seed, pool):
    if pool is None or conc < 2:
        parts = [await run_clients(client, conc, args, seed)]
    else:
        n = min(args.procs, conc)
        shares = [conc // n + (i < conc % n) for i in range(n)]
        loop = asyncio.get_running_loop()
        parts = await loop.run_in_executor(None, pool.map, worker,
                                           [(args, k, seed * 1000 + i) for i, k in enumerate(shares)])
    ttft = [x for p in parts for x in p["ttft"]]
    itl = [x for p in parts for x in p["itl"]]
    errors = [x for p in parts for x in p["errors"]]
    tokens = sum(p["tokens"] for p in parts)
    wall = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    return {"concurrency": conc, "requests": conc * args.requests_per_client, "gen_tokens": tokens,
            "wall_s": round(wall, 3), "gen_tok_s": round(tokens / wall, 2) if wall > 0 else 0,
            "ttft_p50_ms": round(percentile(ttft, 50) * 1000, 2), "ttft_p99_ms": round(percentile(ttft, 99) * 1000, 2),
            "itl_mean_ms": round(statistics.mean(itl) * 1000, 3) if itl else float("nan"), "errors": len(errors),
            "first_error": errors[0] if errors else None}


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=256, help="prompt token ids are drawn from [0, VOCAB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--client", choices=["auto", "openai", "stdlib"], default="auto")
    ap.add_argument("--procs", type=int, default=1, help="client processes per level (each its own event loop)")
    args = ap.parse_args()
    client = make_client(args)
    # --procs: the clients of a level spread over processes, each with its own event loop, so that
    # parsing the events of 64 streams does not make the client the bottleneck
    pool = multiprocessing.get_context("spawn").Pool(args.procs) if args.procs > 1 else None
    levels = [int(x) for x in args.concurrency.split(",")]
    print(f"serve_load: {args.url}, client {client.name} in {args.procs} process(es), prompt {args.prompt_tokens}, "
          f"generated {args.gen_tokens}, {args.requests_per_client} requests per client", flush=True)
    await level(client, 1, argparse.Namespace(**{**vars(args), "requests_per_client": 1}), 0, None)  # warm-up
    rows = []
    print("| clients | requests | gen tokens | wall s | gen tok/s | TTFT p50 ms | TTFT p99 ms | ITL mean ms | errors |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in levels:
        r = await level(client, c, args, args.seed * 100 + c, pool)
        rows.append(r)
        print(f"| {c} | {r['requests']} | {r['gen_tokens']} | {r['wall_s']} | {r['gen_tok_s']} | {r['ttft_p50_ms']} | "
              f"{r['ttft_p99_ms']} | {r['itl_mean_ms']} | {r['errors']} |", flush=True)
        if r["errors"]:
            print(f"  first error: {r['first_error']}", flush=True)
    await client.close()
    if pool:
        pool.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"url": args.url, "client": client.name, "procs": args.procs, "prompt_tokens": args.prompt_tokens,
                       "gen_tokens": args.gen_tokens, "rows": rows}, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
