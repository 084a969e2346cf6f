// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title SoulToken
 * @notice The shared base of this project's development copies of the Relation Protocol social contracts:
 * a soulbound, ERC-721-shaped token that emits the same events as the upstream Semantic SBT
 * (`Transfer` on mint and burn, `CreateRDF` / `RemoveRDF` / `UpdateRDF` with RDF statements).
 * Tokens never move between holders, so `Transfer` only ever mints (from = 0) or burns (to = 0).
 * It is deliberately small: no approvals, no transfers, no proxies. Not audited; for development and tests.
 */
abstract contract SoulToken {
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event CreateRDF(uint256 indexed tokenId, string rdfStatements);
    event UpdateRDF(uint256 indexed tokenId, string rdfStatements);
    event RemoveRDF(uint256 indexed tokenId, string rdfStatements);
    event SetMinter(address indexed addr, bool isMinter);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    bytes16 private constant HEX_DIGITS = "0123456789abcdef";

    string public name;
    string public symbol;
    /// The contract administrator (for a Dao this is its DaoRegister, NOT the DAO owner: see `ownerOfDao`).
    address public owner;
    mapping(address => bool) public minters;

    bool private _transferable;
    uint256 private _minted;
    uint256 private _supply;
    mapping(uint256 => address) private _holders;
    mapping(address => uint256) private _balances;

    modifier onlyOwner() {
        require(msg.sender == owner, "SoulToken: caller is not the owner");
        _;
    }

    constructor(string memory name_, string memory symbol_) {
        name = name_;
        symbol = symbol_;
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function balanceOf(address holder) external view returns (uint256) {
        return _balances[holder];
    }

    function ownerOf(uint256 tokenId) public view returns (address holder) {
        holder = _holders[tokenId];
        require(holder != address(0), "SoulToken: no such token");
    }

    function totalSupply() external view returns (uint256) {
        return _supply;
    }

    /// Tokens ever minted (burned ones included); token ids run from 1 to this number.
    function getMinted() public view returns (uint256) {
        return _minted;
    }

    function transferable() external view returns (bool) {
        return _transferable; // never set: soulbound
    }

    function locked(uint256 tokenId) external view returns (bool) {
        ownerOf(tokenId);
        return true;
    }

    function rdfOf(uint256 tokenId) external view returns (string memory) {
        return _statement(tokenId, ownerOf(tokenId));
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7; // ERC-165 only: this token is not a full ERC-721
    }

    function setMinter(address addr, bool isMinter) external onlyOwner {
        minters[addr] = isMinter;
        emit SetMinter(addr, isMinter);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function setName(string calldata newName) external virtual onlyOwner {
        name = newName;
    }

    /* ---------------- for the concrete contracts ---------------- */

    /// The RDF statement that token `tokenId` held by `holder` stands for.
    function _statement(uint256 tokenId, address holder) internal view virtual returns (string memory);

    /// The id the next `_mint` will use, so a contract can record per-token data before minting.
    function _nextTokenId() internal view returns (uint256) {
        return _minted + 1;
    }

    function _mint(address to) internal returns (uint256 tokenId) {
        require(to != address(0), "SoulToken: mint to the zero address");
        tokenId = ++_minted;
        _holders[tokenId] = to;
        _balances[to] += 1;
        _supply += 1;
        emit Transfer(address(0), to, tokenId);
        emit CreateRDF(tokenId, _statement(tokenId, to));
    }

    function _burn(uint256 tokenId) internal {
        address from = ownerOf(tokenId);
        string memory rdf = _statement(tokenId, from);
        delete _holders[tokenId];
        _balances[from] -= 1;
        _supply -= 1;
        emit Transfer(from, address(0), tokenId);
        emit RemoveRDF(tokenId, rdf);
    }

    /// Lowercase 0x-prefixed hex, the form used in RDF subjects.
    function _hex(address a) internal pure returns (string memory) {
        bytes memory s = new bytes(42);
        s[0] = "0";
        s[1] = "x";
        uint160 v = uint160(a);
        for (uint256 i = 41; i > 1; --i) {
            s[i] = HEX_DIGITS[uint256(v & 0xf)];
            v >>= 4;
        }
        return string(s);
    }

    function _soul(address a) internal pure returns (string memory) {
        return string.concat(":Soul_", _hex(a));
    }
}
