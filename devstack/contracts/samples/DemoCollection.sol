// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DemoCollection
/// @notice An ERC-721 its deployer mints in drops; token ids count up from 1. The same code
///         serves as a game's item collection and as an art collection (the label comes
///         from the known-contracts registry, not from the code).
contract DemoCollection is ERC721, Ownable {
    uint256 public totalMinted;

    constructor(string memory name_, string memory symbol_) ERC721(name_, symbol_) Ownable(msg.sender) {}

    /// @notice Mint `count` consecutive tokens to `to`; returns the first id minted.
    function mint(address to, uint256 count) external onlyOwner returns (uint256 firstId) {
        uint256 minted = totalMinted;
        firstId = minted + 1;
        for (uint256 i = 0; i < count; ++i) {
            // Plain _mint: drops go to wallets, and a receiver hook would only add gas.
            _mint(to, minted + 1 + i);
        }
        totalMinted = minted + count;
    }
}
