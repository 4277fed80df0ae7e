"""Swift proxy filter that holds every request back for a fixed time before passing it on.

A loopback Swift answers in about a millisecond, where a real S3 takes tens of milliseconds
to its first byte. The benchmark puts this filter into the proxy pipeline to see what each
S3 round trip costs the daemon against a plain SDK client. The wait is eventlet's sleep, the
hub Swift's servers run on: only the request being delayed waits, concurrent requests wait
side by side as they would on a network. The proxy's /healthcheck is answered earlier in the
pipeline, so start-up probes stay fast.

  [filter:s3delay]
  paste.filter_factory = swift_s3_delay:filter_factory

The delay comes from SWIFT_S3_DELAY_MS in the proxy's environment (milliseconds, default 0);
at 0 the filter is not in the request path at all.
"""
import os


def delay_seconds(environ):
    raw = environ.get('SWIFT_S3_DELAY_MS', '').strip() or '0'
    try:
        ms = float(raw)
    except ValueError:
        raise ValueError('SWIFT_S3_DELAY_MS must be a number of milliseconds, got %r' % raw)
    if ms < 0:
        raise ValueError('SWIFT_S3_DELAY_MS must not be negative, got %r' % raw)
    return ms / 1000.0


def filter_factory(global_conf, **local_conf):
    seconds = delay_seconds(os.environ)

    def wrap(app):
        if seconds == 0:
            return app
        # imported here: with no delay the proxy runs exactly as without the filter
        from eventlet import sleep

        def delayed(environ, start_response):
            sleep(seconds)
            return app(environ, start_response)
        return delayed
    return wrap
