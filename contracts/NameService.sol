// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SoulToken} from "./SoulToken.sol";

/**
 * @title NameService
 * @notice Development copy of the Relation Name Service: one token per name (`<name><suffix>`), an optional
 * resolution address -> name (`nameOf`), and a profile URI per address (the avatar, `profileURI`).
 * RDF: `:Soul_<owner> p:resolved :Name_<full> . ` (or `p:hold` when not resolved);
 * `setProfileURI` emits UpdateRDF with token id 0: `:Soul_<addr> p:profileURI "<uri>" . `.
 */
contract NameService is SoulToken {
    string public suffix;

    mapping(string => uint256) private _tokenOfName;
    mapping(uint256 => string) private _nameOfToken;
    mapping(address => uint256) private _resolvedToken;
    mapping(uint256 => address) private _resolvedAddr;
    mapping(address => string) private _profileURI;

    constructor(string memory suffix_) SoulToken("Relation Name Service", "RNS") {
        suffix = suffix_;
    }

    /// Registers `name + suffix` to `owner_`; only the owner itself or a minter may do so.
    function register(address owner_, string calldata name_, bool resolve) external returns (uint256 tokenId) {
        require(owner_ == msg.sender || minters[msg.sender], "NameService: not allowed");
        require(bytes(name_).length > 0, "NameService: empty name");
        string memory full = string.concat(name_, suffix);
        require(_tokenOfName[full] == 0, "NameService: already added");
        tokenId = _nextTokenId();
        _tokenOfName[full] = tokenId;
        _nameOfToken[tokenId] = full;
        if (resolve) {
            uint256 previous = _resolvedToken[owner_];
            _resolvedToken[owner_] = tokenId;
            _resolvedAddr[tokenId] = owner_;
            if (previous != 0) {
                delete _resolvedAddr[previous];
                emit UpdateRDF(previous, _statement(previous, owner_));
            }
        }
        _mint(owner_);
    }

    function nameOf(address addr_) external view returns (string memory) {
        return _nameOfToken[_resolvedToken[addr_]];
    }

    function addr(string calldata name_) external view returns (address) {
        return _resolvedAddr[_tokenOfName[name_]];
    }

    function ownerOfName(string calldata name_) external view returns (address) {
        uint256 tokenId = _tokenOfName[name_];
        return tokenId == 0 ? address(0) : ownerOf(tokenId);
    }

    function nameOfTokenId(uint256 tokenId) external view returns (string memory) {
        return _nameOfToken[tokenId];
    }

    function profileURI(address addr_) external view returns (string memory) {
        return _profileURI[addr_];
    }

    function setProfileURI(string calldata profileURI_) external {
        _profileURI[msg.sender] = profileURI_;
        emit UpdateRDF(0, string.concat(_soul(msg.sender), ' p:profileURI "', profileURI_, '" . '));
    }

    function _statement(uint256 tokenId, address holder) internal view override returns (string memory) {
        string memory predicate = _resolvedAddr[tokenId] == holder ? " p:resolved :Name_" : " p:hold :Name_";
        return string.concat(_soul(holder), predicate, _nameOfToken[tokenId], " . ");
    }
}
