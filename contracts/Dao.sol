// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SoulToken} from "./SoulToken.sol";

/**
 * @title Dao
 * @notice A DAO (a group): members hold one token each. The DAO owner is `ownerOfDao()`; `owner()` is the
 * administrator inherited from SoulToken (the DaoRegister). As upstream, `setFreeJoin`, `ownerTransfer` and
 * `setName` emit no event; `setDaoURI` emits UpdateRDF with token id 0: `:Dao_<dao> p:daoURI "<uri>" . `.
 * Member RDF: `:Soul_<member> p:join :Dao_<dao> . `
 */
contract Dao is SoulToken {
    address private _daoOwner;
    string private _daoURI;
    bool private _freeJoin;
    mapping(address => uint256) private _tokenOf;

    modifier onlyDaoOwner() {
        require(msg.sender == _daoOwner, "Dao: must be daoOwner");
        _;
    }

    constructor(address daoOwner_, string memory name_) SoulToken(name_, "DAO") {
        _daoOwner = daoOwner_;
    }

    function setName(string calldata newName) external override onlyDaoOwner {
        name = newName;
    }

    function setDaoURI(string calldata daoURI_) external onlyDaoOwner {
        _daoURI = daoURI_;
        emit UpdateRDF(0, string.concat(":Dao_", _hex(address(this)), ' p:daoURI "', daoURI_, '" . '));
    }

    function setFreeJoin(bool isFreeJoin_) external onlyDaoOwner {
        _freeJoin = isFreeJoin_;
    }

    function ownerTransfer(address to) external onlyDaoOwner {
        _daoOwner = to;
    }

    function addMember(address[] calldata addr) external onlyDaoOwner {
        for (uint256 i = 0; i < addr.length; i++) {
            _join(addr[i]);
        }
    }

    function join() external returns (uint256 tokenId) {
        require(_freeJoin, "Dao: permission denied");
        tokenId = _join(msg.sender);
    }

    /// The DAO owner removes a member, or a member leaves.
    function remove(address addr) external returns (uint256 tokenId) {
        require(msg.sender == _daoOwner || msg.sender == addr, "Dao: permission denied");
        tokenId = _tokenOf[addr];
        require(tokenId != 0, "Dao: not a member");
        _burn(tokenId);
        delete _tokenOf[addr];
    }

    function daoURI() external view returns (string memory) {
        return _daoURI;
    }

    function ownerOfDao() external view returns (address) {
        return _daoOwner;
    }

    function isFreeJoin() external view returns (bool) {
        return _freeJoin;
    }

    function isMember(address addr) external view returns (bool) {
        return _tokenOf[addr] != 0;
    }

    function _join(address to) private returns (uint256 tokenId) {
        require(_tokenOf[to] == 0, "Dao: already a member");
        tokenId = _nextTokenId();
        _tokenOf[to] = tokenId;
        _mint(to);
    }

    function _statement(uint256, address holder) internal view override returns (string memory) {
        return string.concat(_soul(holder), " p:join :Dao_", _hex(address(this)), " . ");
    }
}
