// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title DemoDex
/// @notice A toy "DeFi" venue for demo histories: deposit and withdraw any ERC-20, and swap
///         any token for any other at a fixed 1:1 rate less a 0.3% fee, paid from the tokens
///         the contract holds. Deliberately naive (no pricing, deposits back swaps): never
///         deploy it where the tokens are worth anything.
/// @dev Every event names the user as its first indexed argument, so it lands in topic 1
///      where wallet-history scanners look for it.
contract DemoDex {
    using SafeERC20 for IERC20;

    uint256 public constant FEE_BPS = 30;

    mapping(address user => mapping(address token => uint256 amount)) public deposits;

    event Deposited(address indexed user, address indexed token, uint256 amount);
    event Swapped(
        address indexed user, address indexed tokenIn, address indexed tokenOut, uint256 amountIn, uint256 amountOut
    );
    event Withdrawn(address indexed user, address indexed token, uint256 amount);

    error ZeroAmount();
    error SameToken();
    error InsufficientDeposit(uint256 available, uint256 requested);
    error InsufficientReserve(uint256 available, uint256 requested);

    function deposit(address token, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        deposits[msg.sender][token] += amount;
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(msg.sender, token, amount);
    }

    function swap(address tokenIn, address tokenOut, uint256 amountIn) external returns (uint256 amountOut) {
        if (amountIn == 0) revert ZeroAmount();
        if (tokenIn == tokenOut) revert SameToken();
        amountOut = quote(amountIn);
        uint256 reserve = IERC20(tokenOut).balanceOf(address(this));
        if (amountOut > reserve) revert InsufficientReserve(reserve, amountOut);
        IERC20(tokenIn).safeTransferFrom(msg.sender, address(this), amountIn);
        IERC20(tokenOut).safeTransfer(msg.sender, amountOut);
        emit Swapped(msg.sender, tokenIn, tokenOut, amountIn, amountOut);
    }

    function withdraw(address token, uint256 amount) external {
        uint256 available = deposits[msg.sender][token];
        if (amount > available) revert InsufficientDeposit(available, amount);
        deposits[msg.sender][token] = available - amount;
        IERC20(token).safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, token, amount);
    }

    /// @notice What `swap` pays out for `amountIn`.
    function quote(uint256 amountIn) public pure returns (uint256) {
        return amountIn * (10_000 - FEE_BPS) / 10_000;
    }
}
