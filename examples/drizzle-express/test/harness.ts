// harness.ts — starts `multigres demo` (a throwaway PostgreSQL with the guide's
// sample tenants, and Multigres in front of it) for the tests.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(exampleDir, "../..");

// initdb, setup and first start share two cores with other work; be generous.
const readyTimeoutMs = 180_000;
const stopTimeoutMs = 60_000;
const readyLine = "Press Ctrl-C to stop";

/** A Multigres binary: $MULTIGRES_BIN, or one built from the repository. */
export interface Binary {
  path: string;
  /** Removes a binary the harness built; a no-op for $MULTIGRES_BIN. */
  cleanup(): Promise<void>;
}

export async function multigresBinary(): Promise<Binary> {
  const given = process.env.MULTIGRES_BIN;
  if (given) {
    return { path: given, cleanup: async () => {} };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "multigres-drizzle-"));
  const bin = path.join(dir, "multigres");
  try {
    await promisify(execFile)("go", ["build", "-o", bin, "./cmd/multigres"], {
      cwd: repoRoot,
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`go build ./cmd/multigres in ${repoRoot} failed:\n${stderr}`, { cause: err });
  }
  return { path: bin, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A free TCP port on 127.0.0.1 in 20000-32767 (free when asked; the caller
 * binds it soon after). Not port 0: the kernel would pick from the ephemeral
 * range, where a busy machine's client sockets can take it before the bind.
 */
export async function freePort(): Promise<number> {
  const low = 20000;
  const span = 32768 - low;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = low + ((start + i) % span);
    const srv = net.createServer();
    const ok = await new Promise<boolean>((resolve, reject) => {
      srv.once("error", (err: NodeJS.ErrnoException) =>
        err.code === "EADDRINUSE" ? resolve(false) : reject(err),
      );
      srv.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      return port;
    }
  }
  throw new Error(`no free port on 127.0.0.1 in ${low}-32767`);
}

export interface Demo {
  port: number;
  /** What the demo wrote to stderr so far (for failure messages). */
  log(): string;
  /** Sends SIGINT and waits for the demo to remove its cluster and exit. */
  stop(): Promise<void>;
}

export interface DemoOptions {
  contextVariables?: string[];
}

/**
 * Starts `multigres demo -port <free port>` and resolves once it has printed
 * its ready line and accepts TCP connections.
 */
export async function startDemo(bin: string, opts: DemoOptions = {}): Promise<Demo> {
  const port = await freePort();
  const args = ["demo", "-port", String(port)];
  if (opts.contextVariables) {
    args.push("-context-variables", opts.contextVariables.join(","));
  }
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  // A test process that dies must not leave the demo (and its PostgreSQL) behind.
  const onExit = () => child.kill("SIGINT");
  process.once("exit", onExit);

  const describe = (what: string) =>
    new Error(`multigres ${args.join(" ")}: ${what}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`);
  const demo: Demo = {
    port,
    log: () => stderr,
    stop: async () => {
      process.removeListener("exit", onExit);
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
      const { code, signal } = await exited;
      clearTimeout(timer);
      if (signal === "SIGKILL") {
        throw describe(`did not exit within ${stopTimeoutMs} ms of SIGINT`);
      }
      if (code !== 0 && signal !== "SIGINT") {
        throw describe(`exited with code ${code} after SIGINT`);
      }
    },
  };

  try {
    await spawned;
    await withDeadline(readyTimeoutMs, "did not print its ready line", async (signal) => {
      await Promise.race([
        new Promise<void>((resolve) => {
          const check = () => {
            if (stdout.includes(readyLine)) {
              child.stdout!.off("data", check);
              resolve();
            }
          };
          child.stdout!.on("data", check);
          check();
        }),
        exited.then(({ code, signal }) => {
          throw describe(`exited before it was ready (code ${code}, signal ${signal})`);
        }),
      ]);
      // The ready line comes before the proxy binds its port.
      await waitForConnect(port, signal, exited);
    }).catch((err: Error) => {
      throw err.message.startsWith("multigres ") ? err : describe(err.message);
    });
  } catch (err) {
    await demo.stop().catch(() => {});
    throw err;
  }
  return demo;
}

async function withDeadline<T>(ms: number, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ac.abort();
      reject(new Error(`${what} within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([fn(ac.signal), timeout]);
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

// waitForConnect retries a TCP connect until the listener is up. There is no
// event to wait on from outside the process, so it polls with a short backoff.
async function waitForConnect(port: number, signal: AbortSignal, exited: Promise<unknown>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    if (signal.aborted) throw new Error("aborted waiting for the proxy port");
    if (gone) throw new Error("exited while waiting for the proxy port");
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: "127.0.0.1", port });
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
