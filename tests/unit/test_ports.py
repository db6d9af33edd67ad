from __future__ import annotations

import socket

from composekit.ports import port_is_free


def test_listening_port_is_taken_and_closed_port_is_free() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        port = server.getsockname()[1]
        server.listen()
        assert port_is_free(port) is False
    assert port_is_free(port) is True


def test_time_wait_connections_do_not_count_as_taken() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end lingers in TIME_WAIT
        client.close()
    assert port_is_free(port) is True
