"""Mint from one hot signer: batch concurrent requests, own the nonce, pipeline sends, confirm, recover.

The lifecycle by stage: `intake` (requests in, batches out), `sender` (nonce, fees, signing,
the journal write before each broadcast), `confirmer` (receipts, depth, reorgs), `recovery`
(takeover, nonce resync, rebroadcast, fee-bumped replacement), all over one `state`;
`engine.Minter` composes them.
"""

from chain.minter.config import (
    MinterConfig,
    MinterHealth,
    MinterStats,
    MinterStopped,
    MintProgress,
    MintReceipt,
    MintTimeout,
    ProgressListener,
    RequestIdReused,
    SendRejected,
)
from chain.minter.engine import Minter
from chain.minter.reads import MINTED_TOPIC
from chain.minter.sender import SendOutcome, classify_send_error

__all__ = [
    "MINTED_TOPIC",
    "MintProgress",
    "MintReceipt",
    "MintTimeout",
    "Minter",
    "MinterConfig",
    "MinterHealth",
    "MinterStats",
    "MinterStopped",
    "ProgressListener",
    "RequestIdReused",
    "SendOutcome",
    "SendRejected",
    "classify_send_error",
]
