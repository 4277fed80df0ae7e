import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { WriteContentRequest } from '../generated/containerd/services/content/v1/WriteContentRequest.js';
import type { WriteContentResponse__Output } from '../generated/containerd/services/content/v1/WriteContentResponse.js';

type Stream = ClientDuplexStream<WriteContentRequest, WriteContentResponse__Output>;

interface Waiter {
  resolve(r: WriteContentResponse__Output): void;
  reject(e: unknown): void;
}

/**
 * One Write stream: the daemon answers every request, in order. Requests may run ahead of their
 * answers by a bounded window, so sending does not wait a round trip per message, yet a daemon
 * that falls behind holds the sender back instead of letting requests pile up here.
 */
export class WriteCall {
  private readonly waiting: Waiter[] = [];
  private readonly unanswered: Promise<WriteContentResponse__Output>[] = [];
  private failure: unknown;
  private lastAnswer: WriteContentResponse__Output | undefined;
  private writeBlocked = false;
  private onFailure!: () => void;
  private readonly failed = new Promise<void>((resolve) => (this.onFailure = resolve));

  constructor(private readonly stream: Stream) {
    stream.on('data', (r: WriteContentResponse__Output) => {
      this.lastAnswer = r;
      this.waiting.shift()?.resolve(r);
    });
    stream.on('error', (err: unknown) => this.fail(err));
    stream.on('end', () => this.fail(new Error('the daemon ended the Write stream without an answer')));
  }

  /** Sends a request and waits for its answer (and all before it). */
  async send(request: WriteContentRequest): Promise<WriteContentResponse__Output> {
    const answer = this.enqueue(request);
    await this.flowControl();
    const r = await answer;
    this.unanswered.length = 0;
    return r;
  }

  /** Sends a request, waiting only while `window` requests are still unanswered. */
  async push(request: WriteContentRequest, window: number): Promise<void> {
    this.unanswered.push(this.enqueue(request));
    await this.flowControl();
    while (this.unanswered.length >= window) await this.unanswered.shift();
  }

  /** Waits for the answers to everything pushed; resolves with the last. */
  async settle(): Promise<WriteContentResponse__Output | undefined> {
    for (const p of this.unanswered.splice(0)) await p;
    if (this.failure !== undefined) throw this.failure;
    return this.lastAnswer;
  }

  close(): void {
    this.stream.end();
  }

  /** Ends the stream and waits (at most `ms`) until the daemon has ended it too. */
  async closeAndWait(ms: number): Promise<void> {
    this.stream.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.failed, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  private enqueue(request: WriteContentRequest): Promise<WriteContentResponse__Output> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const answer = new Promise<WriteContentResponse__Output>((resolve, reject) => this.waiting.push({ resolve, reject }));
    // A request pushed ahead may fail while nobody awaits it yet: the failure is kept in
    // `failure` and surfaces at the next send, push or settle.
    answer.catch(() => {});
    this.writeBlocked = !this.stream.write(request);
    return answer;
  }

  private async flowControl(): Promise<void> {
    if (!this.writeBlocked) return;
    const drained = new Promise<void>((resolve) => this.stream.once('drain', resolve));
    await Promise.race([drained, this.failed]);
    this.writeBlocked = false;
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
    this.onFailure();
  }
}
