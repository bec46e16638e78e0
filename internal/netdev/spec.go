package netdev

// Wire numbers of the netdev generic netlink family (Documentation/netlink/specs/netdev.yaml and
// include/uapi/linux/netdev.h; family version 1). They are written out by hand rather than generated: the whole
// family fits on one screen, and TestPrivPolicyMatchesSpec checks every number and type below against the policy
// the running kernel reports, which catches a typo better than a generator over a copied spec would.

const (
	familyName    = "netdev"
	familyVersion = 1
)

// Commands.
const (
	cmdDevGet    = 1
	cmdQueueGet  = 10
	cmdNAPIGet   = 11
	cmdQStatsGet = 12
	cmdNAPISet   = 14
)

// Attribute set "dev".
const (
	attrDevIfindex       = 1
	attrDevXDPFeatures   = 3 // u64 flags, xdp-act
	attrDevXDPZCMaxSegs  = 4 // u32, only for drivers with AF_XDP zero-copy
	attrDevXDPRXMetadata = 5 // u64 flags, xdp-rx-metadata
	attrDevXSKFeatures   = 6 // u64 flags, xsk-flags
)

// Attribute set "queue". The queue-get dump filters on attrQueueIfindex (2), not on 1.
const (
	attrQueueID      = 1
	attrQueueIfindex = 2
	attrQueueType    = 3 // u32 enum queue-type
	attrQueueNAPIID  = 4
	attrQueueDMABuf  = 5
	attrQueueIOUring = 6 // nest, present while an io_uring memory provider is bound
	attrQueueXSK     = 7 // nest (empty xsk-info), present while an AF_XDP socket is bound
)

// Attribute set "napi". The napi-get dump filters on attrNAPIIfindex (1).
const (
	attrNAPIIfindex           = 1
	attrNAPIID                = 2
	attrNAPIIRQ               = 3
	attrNAPIPID               = 4
	attrNAPIDeferHardIRQs     = 5 // u32, at most math.MaxInt32
	attrNAPIGROFlushTimeout   = 6 // uint (NLA_UINT, 4 or 8 bytes), ns
	attrNAPIIRQSuspendTimeout = 7 // uint, ns
	attrNAPIThreaded          = 8 // u32 enum napi-threaded
)

// Attribute set "qstats". Counters are NLA_UINT and start at attribute 8.
const (
	attrQStatsIfindex   = 1
	attrQStatsQueueType = 2
	attrQStatsQueueID   = 3
	attrQStatsScope     = 4 // uint flags qstats-scope: 1 = per queue
	attrQStatsFirst     = 8
	attrQStatsLast      = 34
)

// Generic netlink controller (include/uapi/linux/genetlink.h and netlink.h). Spelled out here because x/sys
// defines them for Linux only and the parsers are platform-neutral.
const (
	genlIDCtrl              = 0x10
	ctrlCmdGetPolicy        = 10
	ctrlAttrFamilyID        = 1
	ctrlAttrPolicy          = 8
	ctrlAttrOpPolicy        = 9
	ctrlAttrOp              = 10
	ctrlAttrPolicyDo        = 1
	ctrlAttrPolicyDump      = 2
	policyTypeAttrType      = 1  // NL_POLICY_TYPE_ATTR_TYPE
	policyTypeAttrMaxValueU = 5  // NL_POLICY_TYPE_ATTR_MAX_VALUE_U
	nlAttrTypeU32           = 4  // NL_ATTR_TYPE_U32
	nlAttrTypeUint          = 17 // NL_ATTR_TYPE_UINT (6.7+)
)

// Header sizes, for mapping an extended-ACK offset back to the attribute it blames.
const (
	nlmsgHeaderLen = 16
	genlHeaderLen  = 4
)
