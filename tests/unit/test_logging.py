"""The JSON logs never carry a phone number, a citizen ID or an e-mail address in clear."""

from __future__ import annotations

import io
import json
import logging
from contextlib import redirect_stderr

from shared.runtime.logging import configure_logging, log_context


def test_personal_data_that_slips_into_a_log_line_or_traceback_is_masked() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        with redirect_stderr(stream):
            configure_logging("intake")
            log = logging.getLogger("tests.logging")
            with log_context(dossier_code="000.00.01.H12-261205-0001"):
                log.warning("sms to %s refused for %s", "0912345678", "an@example.vn")
                try:
                    raise ValueError("citizen 001099012345 not found")
                except ValueError:
                    log.exception("lookup failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "sms to [number] refused for [email]"
    assert first["dossier_code"] == "000.00.01.H12-261205-0001"  # codes are not masked
    assert "001099012345" not in second["exc_info"] and "[number]" in second["exc_info"]


def test_a_broker_outage_logs_each_kind_of_client_error_once_per_half_minute() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        with redirect_stderr(stream):
            configure_logging("processing")
            kafka = logging.getLogger("aiokafka.conn")
            for _ in range(50):  # what aiokafka writes in five seconds without a broker
                kafka.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
            kafka.error("Unable to update metadata from %s", 1)
            for _ in range(3):
                logging.getLogger("services.processing").warning("a service's own warning")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == [
        "Unable connect to node with id 1: Connect call failed",
        "Unable to update metadata from 1",
        *["a service's own warning"] * 3,  # only aiokafka's are thinned
    ]
