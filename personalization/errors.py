"""Errors raised by the personalization stage."""

from chain.errors import ChainUnavailable, RpcError
from chain.rpc import RpcCallError, RpcErrorTypes


class PersonalizationError(Exception):
    """Root of every error raised by personalization/."""

    code = "personalization_error"


class StyleDNAError(PersonalizationError):
    """A collection's style DNA, or params checked against it, is invalid."""

    code = "invalid_style_dna"


class HistoryError(PersonalizationError):
    """The wallet's history could not be read from the chain."""

    code = "history_unavailable"


# The JSON-RPC client's errors as history reads see them: HistoryErrors first (their code is
# history_unavailable, whatever the chain class would say), chain.rpc's classes second, so a
# handler of either kind catches them.


class HistoryUnavailable(HistoryError, ChainUnavailable):
    """The JSON-RPC endpoint could not be reached for a history read."""


class HistoryRpcFailed(HistoryError, RpcError):
    """The JSON-RPC endpoint refused a history read, or answered something that is not JSON-RPC."""


class HistoryRpcError(HistoryError, RpcCallError):
    """The node answered a history read with a JSON-RPC error object."""


HISTORY_RPC_ERRORS = RpcErrorTypes(unavailable=HistoryUnavailable, failed=HistoryRpcFailed, call=HistoryRpcError)
