import { status, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { addReflection, type LoadReflection } from '../../src/grpc/reflection.js';

const METHOD = 'ServerReflectionInfo';
const VERSIONS = ['v1', 'v1alpha'] as const;

/** A reflection call as the lazy handler sees it: only how it is ended with an error. */
type Call = { emit: ReturnType<typeof vi.fn> };
const newCall = (): Call => ({ emit: vi.fn() });

/** An error as a file system call fails with it: its code, and a message naming a path. */
function failureWithCode(code: string): Error {
  return Object.assign(new Error(`${code}: too many open files, open '/some/install/reflection.proto'`), { code });
}

/**
 * Reflection added to a stand-in server, built by `load`: what a reflection call of each version
 * reaches, what was logged, and how often building was tried.
 */
function reflectionWith(load: () => ReturnType<LoadReflection>) {
  const handlers = new Map<string, (call: Call) => void>();
  const server = {
    addService(service: ServiceDefinition, implementation: UntypedServiceImplementation) {
      const name = service[METHOD]!.path.split('/')[1]!;
      handlers.set(name, implementation[METHOD] as unknown as (call: Call) => void);
    },
  };
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const loads = vi.fn(load);
  addReflection(server, logger, loads);
  const reflect = (version: (typeof VERSIONS)[number]) => {
    const call = newCall();
    handlers.get(`grpc.reflection.${version}.ServerReflection`)!(call);
    return call;
  };
  return { reflect, logs, loads };
}

/** What a working @grpc/reflection registers: a handler a version, noting the calls handed to it. */
function workingReflection(served: Call[]): ReturnType<LoadReflection> {
  return class {
    addToServer(server: { addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void }) {
      for (const version of VERSIONS) {
        const path = `/grpc.reflection.${version}.ServerReflection/${METHOD}`;
        server.addService({ [METHOD]: { path } } as never, { [METHOD]: ((call: Call) => void served.push(call)) as never });
      }
    }
  };
}

const UNAVAILABLE = "server reflection is not available: could not be built (EMFILE), see the daemon's log";

describe('server reflection', () => {
  it('is built at the first reflection call, not when it is added to the server, and only once', () => {
    const served: Call[] = [];
    const { reflect, loads } = reflectionWith(() => workingReflection(served));
    expect(loads).not.toHaveBeenCalled();
    const calls = [reflect('v1'), reflect('v1alpha'), reflect('v1')];
    expect(loads).toHaveBeenCalledTimes(1);
    expect(served).toEqual(calls);
  });
});

describe('server reflection that cannot be built', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2025-01-01T00:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it("answers INTERNAL naming the error's code and pointing at the daemon's log, not at the daemon's paths", () => {
    const { reflect } = reflectionWith(() => {
      throw failureWithCode('EMFILE');
    });
    const call = reflect('v1');
    expect(call.emit).toHaveBeenCalledTimes(1);
    expect(call.emit).toHaveBeenCalledWith('error', { code: status.INTERNAL, details: UNAVAILABLE });
  });

  it('logs why once, and answers every reflection call of the next 60 s the same without trying again', () => {
    const { reflect, logs, loads } = reflectionWith(() => {
      throw failureWithCode('EMFILE');
    });
    const calls = [reflect('v1'), reflect('v1alpha')];
    vi.advanceTimersByTime(59_999);
    calls.push(reflect('v1'), reflect('v1alpha'));
    for (const call of calls) expect(call.emit).toHaveBeenCalledWith('error', { code: status.INTERNAL, details: UNAVAILABLE });
    expect(loads).toHaveBeenCalledTimes(1);
    const errors = logs.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: expect.stringContaining('server reflection could not be built'), err: { code: 'EMFILE' } });
  });

  it('is tried again once 60 s have passed, and then serves the calls', () => {
    const served: Call[] = [];
    let broken = true;
    const { reflect, loads, logs } = reflectionWith(() => {
      if (broken) throw failureWithCode('EMFILE');
      return workingReflection(served);
    });
    expect(reflect('v1').emit).toHaveBeenCalledWith('error', { code: status.INTERNAL, details: UNAVAILABLE });
    broken = false;
    vi.advanceTimersByTime(60_000);
    const v1 = reflect('v1');
    const v1alpha = reflect('v1alpha');
    expect(loads).toHaveBeenCalledTimes(2);
    expect(v1.emit).not.toHaveBeenCalled();
    expect(v1alpha.emit).not.toHaveBeenCalled();
    expect(served).toEqual([v1, v1alpha]);
    expect(logs.filter((l) => l.level === 50)).toHaveLength(1);
  });

  it('is tried again after each failed minute, logging each failure once', () => {
    const { reflect, loads, logs } = reflectionWith(() => {
      throw failureWithCode('EMFILE');
    });
    for (let minute = 0; minute < 3; minute++) {
      reflect('v1');
      reflect('v1alpha');
      vi.advanceTimersByTime(60_000);
    }
    expect(loads).toHaveBeenCalledTimes(3);
    expect(logs.filter((l) => l.level === 50)).toHaveLength(3);
  });
});
