// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SoulToken} from "./SoulToken.sol";
import {Dao} from "./Dao.sol";

/**
 * @title DaoRegister
 * @notice Deploys DAO contracts; the creator holds the register's token for each one.
 * RDF: `:Soul_<creator> p:daoContract :Contract_<dao> . `
 */
contract DaoRegister is SoulToken {
    mapping(uint256 => address) private _daoOfToken;

    constructor() SoulToken("Dao Register", "DAOREG") {}

    /// Deploys a DAO named `name_` owned by `to` (its `ownerOfDao()`); returns the register's token id.
    function deployDaoContract(address to, string calldata name_) external returns (uint256 tokenId) {
        address dao = address(new Dao(to, name_));
        tokenId = _nextTokenId();
        _daoOfToken[tokenId] = dao;
        _mint(to);
    }

    function daoOf(uint256 tokenId) external view returns (address daoOwner, address contractAddress) {
        return (ownerOf(tokenId), _daoOfToken[tokenId]);
    }

    function _statement(uint256 tokenId, address holder) internal view override returns (string memory) {
        return string.concat(_soul(holder), " p:daoContract :Contract_", _hex(_daoOfToken[tokenId]), " . ");
    }
}
