// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";

/// @title PersonaMint
/// @notice Personalized ERC-721 collection minted on demand by a service signer.
/// @dev Every mint is keyed by a `requestId` (derived off chain from tenant + idempotency
///      key). A request id can mint at most one token, ever, so a minter that crashed after
///      sending can retry blindly and read the result back with `tokenIdOf`.
contract PersonaMint is ERC721, ERC721URIStorage, ERC2981, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Cap on the number of tokens ever minted; 0 means unlimited.
    uint256 public immutable maxSupply;

    uint256 private _totalMinted;
    string private _contractURI;
    mapping(bytes32 requestId => uint256 tokenId) private _tokenIdOf;

    event Minted(bytes32 indexed requestId, uint256 indexed tokenId, address indexed to);
    event MintSkipped(bytes32 indexed requestId, uint256 indexed existingTokenId);
    /// @dev ERC-7572: marketplaces re-fetch `contractURI()` when this is emitted.
    event ContractURIUpdated();

    error RequestAlreadyMinted(bytes32 requestId, uint256 tokenId);
    error MaxSupplyReached(uint256 maxSupply);
    error LengthMismatch();
    error InvalidAdmin();

    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address minter,
        string memory contractURI_,
        address royaltyReceiver,
        uint96 royaltyBps,
        uint256 maxSupply_
    ) ERC721(name_, symbol_) {
        // Without an admin nobody could ever grant roles or fix metadata.
        if (admin == address(0)) revert InvalidAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (minter != address(0)) _grantRole(MINTER_ROLE, minter);
        _contractURI = contractURI_;
        // A zero receiver with a non-zero fee is a configuration mistake: let ERC2981 revert.
        if (royaltyReceiver != address(0) || royaltyBps != 0) _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        maxSupply = maxSupply_;
    }

    /// @notice Mint one token for `requestId`; reverts if that request already minted.
    function mint(address to, string calldata uri, bytes32 requestId)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 tokenId)
    {
        uint256 existing = _tokenIdOf[requestId];
        if (existing != 0) revert RequestAlreadyMinted(requestId, existing);
        uint256 minted = _totalMinted;
        _checkSupply(minted, 1);
        unchecked {
            tokenId = minted + 1;
        }
        _totalMinted = tokenId;
        _mintKeyed(to, uri, requestId, tokenId);
    }

    /// @notice Mint many tokens in one transaction. Request ids that already minted (before
    ///         or earlier in this batch) are skipped with `MintSkipped` rather than reverting,
    ///         so one stale entry cannot sink the whole batch.
    function mintBatch(address[] calldata to, string[] calldata uris, bytes32[] calldata requestIds)
        external
        onlyRole(MINTER_ROLE)
    {
        uint256 count = to.length;
        if (uris.length != count || requestIds.length != count) revert LengthMismatch();
        uint256 minted = _totalMinted;
        for (uint256 i = 0; i < count; ++i) {
            bytes32 requestId = requestIds[i];
            uint256 existing = _tokenIdOf[requestId];
            if (existing != 0) {
                emit MintSkipped(requestId, existing);
                continue;
            }
            _checkSupply(minted, 1);
            unchecked {
                ++minted;
            }
            _mintKeyed(to[i], uris[i], requestId, minted);
        }
        _totalMinted = minted;
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

    function setContractURI(string calldata contractURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _contractURI = contractURI_;
        emit ContractURIUpdated();
    }

    /// @notice Replace a token's metadata URI; emits ERC-4906 `MetadataUpdate`.
    function setTokenURI(uint256 tokenId, string calldata uri) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireOwned(tokenId);
        _setTokenURI(tokenId, uri);
    }

    function setDefaultRoyalty(address receiver, uint96 royaltyBps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, royaltyBps);
    }

    function deleteDefaultRoyalty() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _deleteDefaultRoyalty();
    }

    function tokenURI(uint256 tokenId) public view override(ERC721, ERC721URIStorage) returns (string memory) {
        return super.tokenURI(tokenId);
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, ERC721URIStorage, ERC2981, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    function _checkSupply(uint256 minted, uint256 adding) private view {
        uint256 cap = maxSupply;
        if (cap != 0 && minted + adding > cap) revert MaxSupplyReached(cap);
    }

    /// @dev `_mint`, not `_safeMint`: recipients are chosen by the service, and a contract
    ///      wallet without `onERC721Received` must still receive its token instead of
    ///      reverting (and, in a batch, sinking every other mint).
    function _mintKeyed(address to, string calldata uri, bytes32 requestId, uint256 tokenId) private {
        _tokenIdOf[requestId] = tokenId;
        _mint(to, tokenId);
        _setTokenURI(tokenId, uri);
        emit Minted(requestId, tokenId, to);
    }
}
