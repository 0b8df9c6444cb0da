// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {ERC721} from "solady/src/tokens/ERC721.sol";
import {ECDSA} from "solady/src/utils/ECDSA.sol";
import {EIP712} from "solady/src/utils/EIP712.sol";
import {SSTORE2} from "solady/src/utils/SSTORE2.sol";

/// @notice What the service calls. Its ERC-165 id is how the service knows a contract it may mint
///         into: it refuses to start against one that does not report it.
interface IPersonaMintV2 {
    struct Mint {
        address to;
        bytes32 requestId;
        bytes32 digest; // sha2-256 digest of the metadata block
        uint8 codec; // CODEC_RAW or CODEC_DAG_PB
    }

    struct MintVoucher {
        address recipient;
        bytes32 requestId;
        bytes32 digest;
        uint8 codec;
        uint256 price; // wei the submitter pays, forwarded to `payout`; may be 0
        uint64 deadline; // unix seconds; the voucher is void after it
    }

    function mint(address to, bytes32 requestId, bytes32 digest, uint8 codec) external returns (uint256 tokenId);
    function mintBatch(Mint[] calldata mints) external;
    function mintWithVoucher(MintVoucher calldata voucher, bytes calldata signature)
        external
        payable
        returns (uint256 tokenId);
    function voucherDigest(MintVoucher calldata voucher) external view returns (bytes32);
    function updateTokenURI(uint256 tokenId, bytes32 digest, uint8 codec) external;
    function updateTokenURIs(uint256[] calldata tokenIds, bytes32[] calldata digests, uint8[] calldata codecs)
        external;
    function cidOf(uint256 tokenId) external view returns (bytes32 digest, uint8 codec);
    function tokenIdOf(bytes32 requestId) external view returns (uint256);
    function totalMinted() external view returns (uint256);
}

/// @title PersonaMint v2
/// @notice Personalized ERC-721 collection minted on demand by a service signer, or by the
///         collector with a voucher the service signed (EIP-712).
/// @dev Storage per token, packed: the ownership slot holds the owner (160 bits) and 96 bits of
///      extra data saying where the token's metadata CID digest lives: in a batch's SSTORE2
///      data contract (batch number + index: 32 bytes of code per token instead of a 20k-gas
///      slot) or in a slot of its own (single mints, vouchers, updates). `tokenURI` rebuilds
///      `ipfs://b…`, the CIDv1 (base32, sha2-256) of the raw-leaf or dag-pb block the service
///      pinned, byte for byte. A request id mints at most one token, ever, by either path.
contract PersonaMintV2 is IPersonaMintV2, ERC721, ERC2981, AccessControl, EIP712 {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant METADATA_ROLE = keccak256("METADATA_ROLE");
    bytes32 public constant VOUCHER_SIGNER_ROLE = keccak256("VOUCHER_SIGNER_ROLE");

    /// @dev Multicodec of the CID's content: raw (a single-block file) or dag-pb (a UnixFS DAG).
    uint8 public constant CODEC_RAW = 0x55;
    uint8 public constant CODEC_DAG_PB = 0x70;

    bytes32 public constant VOUCHER_TYPEHASH = keccak256(
        "MintVoucher(address recipient,bytes32 requestId,bytes32 digest,uint8 codec,uint256 price,uint64 deadline)"
    );

    /// @notice Cap on the number of tokens ever minted; 0 means unlimited.
    uint256 public immutable maxSupply;

    // Extra data (96 bits of the ownership slot): bit 0 dag-pb, bits 1-32 batch number (0: the
    // digest is in `_digestOf`), bits 33-48 index in that batch.
    uint256 private constant _DAG_PB_BIT = 1;

    uint256 private _totalMinted;
    uint256 private _batches; // batch data contracts written so far
    address public payout;
    string private _name;
    string private _symbol;
    string private _contractURI;
    mapping(bytes32 requestId => uint256 tokenId) private _tokenIdOf;
    mapping(uint256 tokenId => bytes32 digest) private _digestOf;
    mapping(uint256 batch => address data) private _batchData;

    event Minted(bytes32 indexed requestId, uint256 indexed tokenId, address indexed to);
    event MintSkipped(bytes32 indexed requestId, uint256 indexed existingTokenId);
    event VoucherRedeemed(bytes32 indexed requestId, uint256 indexed tokenId, address indexed payer, uint256 price);
    event PayoutChanged(address payout);
    /// @dev ERC-4906 (declared here: OpenZeppelin's IERC4906 brings its own IERC721 along).
    event MetadataUpdate(uint256 _tokenId);
    event BatchMetadataUpdate(uint256 _fromTokenId, uint256 _toTokenId);
    /// @dev ERC-7572: marketplaces re-fetch `contractURI()` when this is emitted.
    event ContractURIUpdated();

    error RequestAlreadyMinted(bytes32 requestId, uint256 tokenId);
    error MaxSupplyReached(uint256 maxSupply);
    error InvalidAdmin();
    error InvalidCodec(uint8 codec);
    error BatchTooLarge(uint256 count);
    error LengthMismatch();
    error VoucherExpired(uint64 deadline);
    error InvalidVoucherSigner(address recovered);
    error WrongPayment(uint256 expected, uint256 sent);
    error PaymentFailed();
    error NoPayout();

    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address minter,
        string memory contractURI_,
        address royaltyReceiver,
        uint96 royaltyBps,
        uint256 maxSupply_
    ) {
        if (admin == address(0)) revert InvalidAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (minter != address(0)) {
            _grantRole(MINTER_ROLE, minter);
            _grantRole(METADATA_ROLE, minter);
            _grantRole(VOUCHER_SIGNER_ROLE, minter);
        }
        _name = name_;
        _symbol = symbol_;
        _contractURI = contractURI_;
        if (royaltyReceiver != address(0) || royaltyBps != 0) _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        maxSupply = maxSupply_;
        payout = admin;
    }

    // ------------------------------------------------------------------ minting

    /// @notice Mint one token for `requestId`; reverts if that request already minted.
    function mint(address to, bytes32 requestId, bytes32 digest, uint8 codec)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 tokenId)
    {
        uint256 existing = _tokenIdOf[requestId];
        if (existing != 0) revert RequestAlreadyMinted(requestId, existing);
        tokenId = _mintInline(to, requestId, digest, codec);
    }

    /// @notice Mint many tokens in one transaction, their digests in one SSTORE2 data contract.
    ///         Request ids that already minted (before or earlier in this batch) are skipped with
    ///         `MintSkipped`, so one stale entry cannot sink the whole batch.
    function mintBatch(Mint[] calldata mints) external onlyRole(MINTER_ROLE) {
        uint256 count = mints.length;
        if (count > type(uint16).max) revert BatchTooLarge(count);
        uint256 minted = _totalMinted;
        uint256 batch = _batches + 1;
        bytes memory digests = new bytes(count * 32);
        uint256 written;
        for (uint256 i = 0; i < count; ++i) {
            Mint calldata item = mints[i];
            bytes32 requestId = item.requestId;
            uint256 existing = _tokenIdOf[requestId];
            if (existing != 0) {
                emit MintSkipped(requestId, existing);
                continue;
            }
            uint256 dagPb = _codecBit(item.codec);
            unchecked {
                ++minted;
            }
            bytes32 digest = item.digest;
            assembly ("memory-safe") {
                mstore(add(add(digests, 0x20), shl(5, written)), digest)
            }
            _tokenIdOf[requestId] = minted;
            _mintAndSetExtraDataUnchecked(item.to, minted, uint96(dagPb | (batch << 1) | (written << 33)));
            emit Minted(requestId, minted, item.to);
            unchecked {
                ++written;
            }
        }
        if (written == 0) return;
        _checkSupply(minted);
        assembly ("memory-safe") {
            mstore(digests, shl(5, written)) // only the minted ones
        }
        _batchData[batch] = SSTORE2.write(digests);
        _batches = batch;
        _totalMinted = minted;
    }

    /// @notice Mint with a voucher a VOUCHER_SIGNER_ROLE key signed; anyone may send it, paying
    ///         `price` (forwarded to `payout`), and the voucher's recipient gets the token.
    function mintWithVoucher(MintVoucher calldata voucher, bytes calldata signature)
        external
        payable
        returns (uint256 tokenId)
    {
        if (block.timestamp > voucher.deadline) revert VoucherExpired(voucher.deadline);
        address signer = ECDSA.tryRecoverCalldata(_hashTypedData(_voucherHash(voucher)), signature);
        if (signer == address(0) || !hasRole(VOUCHER_SIGNER_ROLE, signer)) revert InvalidVoucherSigner(signer);
        if (msg.value != voucher.price) revert WrongPayment(voucher.price, msg.value);
        uint256 existing = _tokenIdOf[voucher.requestId];
        if (existing != 0) revert RequestAlreadyMinted(voucher.requestId, existing);
        // Effects before the payment's call.
        tokenId = _mintInline(voucher.recipient, voucher.requestId, voucher.digest, voucher.codec);
        emit VoucherRedeemed(voucher.requestId, tokenId, msg.sender, voucher.price);
        if (voucher.price != 0) {
            address to = payout;
            if (to == address(0)) revert NoPayout();
            (bool ok,) = to.call{value: voucher.price}("");
            if (!ok) revert PaymentFailed();
        }
    }

    /// @notice The EIP-712 digest a voucher signer signs (what wallets show as typed data).
    function voucherDigest(MintVoucher calldata voucher) external view returns (bytes32) {
        return _hashTypedData(_voucherHash(voucher));
    }

    // ------------------------------------------------------------------ updates (ERC-4906)

    /// @notice Point a token at new metadata; emits `MetadataUpdate`.
    function updateTokenURI(uint256 tokenId, bytes32 digest, uint8 codec) external onlyRole(METADATA_ROLE) {
        _update(tokenId, digest, codec);
        emit MetadataUpdate(tokenId);
    }

    /// @notice Many updates at once; `BatchMetadataUpdate` when the ids are one ascending run,
    ///         else one `MetadataUpdate` each.
    function updateTokenURIs(uint256[] calldata tokenIds, bytes32[] calldata digests, uint8[] calldata codecs)
        external
        onlyRole(METADATA_ROLE)
    {
        uint256 count = tokenIds.length;
        if (digests.length != count || codecs.length != count) revert LengthMismatch();
        bool run = true;
        for (uint256 i = 0; i < count; ++i) {
            _update(tokenIds[i], digests[i], codecs[i]);
            if (i != 0 && tokenIds[i] != tokenIds[i - 1] + 1) run = false;
        }
        if (count == 0) return;
        if (run) {
            emit BatchMetadataUpdate(tokenIds[0], tokenIds[count - 1]);
        } else {
            for (uint256 i = 0; i < count; ++i) {
                emit MetadataUpdate(tokenIds[i]);
            }
        }
    }

    // ------------------------------------------------------------------ views

    function name() public view override returns (string memory) {
        return _name;
    }

    function symbol() public view override returns (string memory) {
        return _symbol;
    }

    /// @notice `ipfs://` + the CIDv1 (base32) of the token's metadata, as the service pinned it.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        if (!_exists(tokenId)) revert TokenDoesNotExist();
        (bytes32 digest, uint8 codec) = _cidOf(tokenId);
        return string.concat("ipfs://", _cidString(digest, codec));
    }

    /// @notice The token's metadata CID as (sha2-256 digest, multicodec).
    function cidOf(uint256 tokenId) external view returns (bytes32 digest, uint8 codec) {
        if (!_exists(tokenId)) revert TokenDoesNotExist();
        return _cidOf(tokenId);
    }

    /// @notice Token minted for `requestId`, or 0 if none (token ids start at 1).
    function tokenIdOf(bytes32 requestId) external view returns (uint256) {
        return _tokenIdOf[requestId];
    }

    function totalMinted() external view returns (uint256) {
        return _totalMinted;
    }

    /// @notice ERC-7572 collection-level metadata URI.
    function contractURI() external view returns (string memory) {
        return _contractURI;
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, ERC2981, AccessControl)
        returns (bool)
    {
        return interfaceId == bytes4(0x49064906) // ERC-4906
            || interfaceId == type(IPersonaMintV2).interfaceId || ERC721.supportsInterface(interfaceId) || ERC2981.supportsInterface(interfaceId)
            || interfaceId == type(IAccessControl).interfaceId;
    }

    // ------------------------------------------------------------------ admin

    function setContractURI(string calldata contractURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _contractURI = contractURI_;
        emit ContractURIUpdated();
    }

    function setPayout(address payout_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        payout = payout_;
        emit PayoutChanged(payout_);
    }

    function setDefaultRoyalty(address receiver, uint96 royaltyBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, royaltyBps);
    }

    function deleteDefaultRoyalty() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _deleteDefaultRoyalty();
    }

    // ------------------------------------------------------------------ internals

    function _domainNameAndVersion() internal pure override returns (string memory, string memory) {
        return ("PersonaMint", "2");
    }

    function _voucherHash(MintVoucher calldata v) private pure returns (bytes32) {
        return keccak256(
            abi.encode(VOUCHER_TYPEHASH, v.recipient, v.requestId, v.digest, v.codec, v.price, v.deadline)
        );
    }

    function _mintInline(address to, bytes32 requestId, bytes32 digest, uint8 codec) private returns (uint256 id) {
        uint256 dagPb = _codecBit(codec);
        unchecked {
            id = _totalMinted + 1;
        }
        _checkSupply(id);
        _totalMinted = id;
        _tokenIdOf[requestId] = id;
        _digestOf[id] = digest;
        _mintAndSetExtraDataUnchecked(to, id, uint96(dagPb));
        emit Minted(requestId, id, to);
    }

    function _update(uint256 tokenId, bytes32 digest, uint8 codec) private {
        if (!_exists(tokenId)) revert TokenDoesNotExist();
        _digestOf[tokenId] = digest;
        _setExtraData(tokenId, uint96(_codecBit(codec)));
    }

    function _cidOf(uint256 tokenId) private view returns (bytes32 digest, uint8 codec) {
        uint256 extra = _getExtraData(tokenId);
        codec = extra & _DAG_PB_BIT != 0 ? CODEC_DAG_PB : CODEC_RAW;
        uint256 batch = (extra >> 1) & type(uint32).max;
        if (batch == 0) {
            digest = _digestOf[tokenId];
        } else {
            uint256 start = ((extra >> 33) & type(uint16).max) * 32;
            digest = bytes32(SSTORE2.read(_batchData[batch], start, start + 32));
        }
    }

    function _codecBit(uint8 codec) private pure returns (uint256) {
        if (codec == CODEC_RAW) return 0;
        if (codec == CODEC_DAG_PB) return _DAG_PB_BIT;
        revert InvalidCodec(codec);
    }

    function _checkSupply(uint256 minted) private view {
        uint256 cap = maxSupply;
        if (cap != 0 && minted > cap) revert MaxSupplyReached(cap);
    }

    /// @dev "b" + RFC 4648 base32 (lower case, no padding) of 0x01 codec 0x12 0x20 digest: the
    ///      36 bytes of a CIDv1 with a sha2-256 multihash, 58 characters after the prefix.
    function _cidString(bytes32 digest, uint8 codec) private pure returns (string memory) {
        bytes memory raw = abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), digest);
        bytes memory alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        bytes memory out = new bytes(59);
        out[0] = "b";
        uint256 buffer;
        uint256 bits;
        uint256 at = 1;
        for (uint256 i = 0; i < 36; ++i) {
            buffer = (buffer << 8) | uint8(raw[i]);
            bits += 8;
            while (bits >= 5) {
                bits -= 5;
                out[at++] = alphabet[(buffer >> bits) & 31];
            }
        }
        if (bits > 0) out[at++] = alphabet[(buffer << (5 - bits)) & 31];
        return string(out);
    }
}
