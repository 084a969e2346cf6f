// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SoulToken} from "./SoulToken.sol";

/**
 * @title Follow
 * @notice The follow contract of one address (`representedAddress`): each follower holds one token.
 * RDF: `:Soul_<follower> p:following :Soul_<represented> . `
 */
contract Follow is SoulToken {
    address public representedAddress;
    mapping(address => uint256) private _tokenOf;

    constructor(address represented) SoulToken("Follow", "FOLLOW") {
        representedAddress = represented;
    }

    function follow() external returns (uint256 tokenId) {
        require(_tokenOf[msg.sender] == 0, "Follow: already following");
        tokenId = _nextTokenId();
        _tokenOf[msg.sender] = tokenId;
        _mint(msg.sender);
    }

    function unfollow() external returns (uint256 tokenId) {
        tokenId = _tokenOf[msg.sender];
        require(tokenId != 0, "Follow: not following");
        _burn(tokenId);
        delete _tokenOf[msg.sender];
    }

    function isFollowing(address addr) external view returns (bool) {
        return _tokenOf[addr] != 0;
    }

    function _statement(uint256, address holder) internal view override returns (string memory) {
        return string.concat(_soul(holder), " p:following ", _soul(representedAddress), " . ");
    }
}
