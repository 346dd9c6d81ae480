"""The safety board: a server-rendered, live web page over the embedded runtime."""

from safety_stream.board.routes import add_board_routes

__all__ = ["add_board_routes"]
