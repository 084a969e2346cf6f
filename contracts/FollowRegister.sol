// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SoulToken} from "./SoulToken.sol";
import {Follow} from "./Follow.sol";

/**
 * @title FollowRegister
 * @notice Deploys one Follow contract per address; the address holds the register's token for it.
 * Anyone may deploy the follow contract of any address (it only ever represents that address).
 * RDF: `:Soul_<user> p:followContract :Contract_<follow> . `
 */
contract FollowRegister is SoulToken {
    mapping(address => address) private _followOf;
    mapping(uint256 => address) private _contractOfToken;

    constructor() SoulToken("Follow Register", "FOLLOWREG") {}

    function deployFollowContract(address to) external returns (uint256 tokenId) {
        require(_followOf[to] == address(0), "FollowRegister: already deployed");
        address follow = address(new Follow(to));
        _followOf[to] = follow;
        tokenId = _nextTokenId();
        _contractOfToken[tokenId] = follow;
        _mint(to);
    }

    function ownedFollowContract(address owner_) external view returns (address) {
        return _followOf[owner_];
    }

    function _statement(uint256 tokenId, address holder) internal view override returns (string memory) {
        return string.concat(_soul(holder), " p:followContract :Contract_", _hex(_contractOfToken[tokenId]), " . ");
    }
}
