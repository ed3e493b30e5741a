import Testing
import SealboxJail

/// This machine's /proc/self/mountinfo (Debian 12 VM, hybrid cgroups), captured verbatim.
let cgroupHybridMountinfoFixture = """
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334524k,nr_inodes=3083631,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

"""

/// A pure cgroup v2 host (systemd, Debian 12 / Fedora style).
let cgroupPureV2MountinfoFixture = """
22 29 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 29 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
26 22 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:26 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw
"""

/// Older systemd hybrid layout: co-mounted "cpu,cpuacct" and "net_cls,net_prio", xattr/name=systemd,
/// a release_agent option and an escaped mount point.
let cgroupComountedMountinfoFixture = #"""
25 21 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
32 25 0:30 /docker/abc /sys/fs/cgroup/my\040memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
34 25 0:31 / /mnt/pids-again rw,relatime shared:17 - cgroup cgroup rw,pids
35 25 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,freezer
"""#

@Suite("cgroup mountinfo parsing")
struct CgroupMountinfoTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        let mountinfo: String
        let v1: [String: String]
        let v2: [String]
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(
            label: "this host (hybrid, separate mounts)",
            mountinfo: cgroupHybridMountinfoFixture,
            v1: [
                "cpu": "/sys/fs/cgroup/cpu",
                "cpuacct": "/sys/fs/cgroup/cpuacct",
                "cpuset": "/sys/fs/cgroup/cpuset",
                "memory": "/sys/fs/cgroup/memory",
                "devices": "/sys/fs/cgroup/devices",
                "freezer": "/sys/fs/cgroup/freezer",
                "blkio": "/sys/fs/cgroup/blkio",
                "pids": "/sys/fs/cgroup/pids",
                "name=systemd": "/sys/fs/cgroup/systemd",
            ],
            v2: ["/sys/fs/cgroup/unified"]),
        Case(label: "pure v2", mountinfo: cgroupPureV2MountinfoFixture, v1: [:], v2: ["/sys/fs/cgroup"]),
        Case(
            label: "co-mounted cpu,cpuacct",
            mountinfo: cgroupComountedMountinfoFixture,
            v1: [
                "name=systemd": "/sys/fs/cgroup/systemd",
                "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                "net_cls": "/sys/fs/cgroup/net_cls,net_prio",
                "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
                "memory": "/sys/fs/cgroup/my memory",
                "pids": "/sys/fs/cgroup/pids",
                "freezer": "/sys/fs/cgroup/freezer",
            ],
            v2: ["/sys/fs/cgroup/unified"]),
        Case(label: "empty", mountinfo: "", v1: [:], v2: []),
        Case(label: "garbage lines", mountinfo: "nonsense\n1 2 3\n\n", v1: [:], v2: []),
    ]

    @Test("controller -> mount point", arguments: cases)
    func mounts(_ testCase: Case) {
        let mounts = CgroupParsing.cgroupMounts(mountinfo: testCase.mountinfo)
        #expect(mounts.v1 == testCase.v1)
        #expect(mounts.v2 == testCase.v2)
    }

    @Test func parsesLineFields() throws {
        let line = #"32 25 0:30 /docker/abc /sys/fs/cgroup/my\040memory rw,nosuid shared:16 master:3 - cgroup cgroup rw,memory"#
        let entry = try #require(CgroupParsing.parseMountinfoLine(line))
        #expect(entry.mountID == 32)
        #expect(entry.parentID == 25)
        #expect(entry.root == "/docker/abc")
        #expect(entry.mountPoint == "/sys/fs/cgroup/my memory")
        #expect(entry.fsType == "cgroup")
        #expect(entry.source == "cgroup")
        #expect(entry.superOptions == ["rw", "memory"])
    }

    @Test("octal unescaping", arguments: [
        (#"/a\040b"#, "/a b"),
        (#"/tab\011x"#, "/tab\tx"),
        (#"/back\134slash"#, "/back\\slash"),
        (#"/plain"#, "/plain"),
        (#"/trailing\04"#, #"/trailing\04"#),
        (#"/not\999octal"#, #"/not\999octal"#),
    ])
    func unescape(_ input: String, _ expected: String) {
        #expect(CgroupParsing.unescapeMountinfoField(input[...]) == expected)
    }

    @Test("v1 controller options", arguments: [
        (["rw", "cpu", "cpuacct"], ["cpu", "cpuacct"]),
        (["rw", "xattr", "release_agent=/x", "name=systemd"], ["name=systemd"]),
        (["ro", "noprefix", "clone_children", "cpuset"], ["cpuset"]),
        (["rw", "none", "name=foo"], ["name=foo"]),
    ])
    func controllers(_ options: [String], _ expected: [String]) {
        #expect(CgroupParsing.v1Controllers(superOptions: options) == expected)
    }
}

@Suite("cgroup key-value parsers")
struct CgroupKeyValueTests {
    @Test("flat keyed files", arguments: [
        // memory.events (v2)
        ("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
         ["low": 0, "high": 0, "max": 12, "oom": 2, "oom_kill": 1, "oom_group_kill": 0]),
        // memory.oom_control (v1, this kernel)
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", ["oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3]),
        // pids.events (v1 and v2)
        ("max 7\n", ["max": 7]),
        // cpu.stat (v2)
        ("usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
         ["usage_usec": 12345, "user_usec": 10000, "system_usec": 2345, "nr_periods": 0, "nr_throttled": 0,
          "throttled_usec": 0]),
        // cgroup.events
        ("populated 1\nfrozen 0\n", ["populated": 1, "frozen": 0]),
        // junk lines are skipped
        ("bad\nkey notanumber\nk -1\nok 5\n\n  spaced   9  \n", ["ok": 5, "spaced": 9]),
        ("", [:]),
    ] as [(String, [String: UInt64])])
    func keyValues(_ text: String, _ expected: [String: UInt64]) {
        #expect(CgroupParsing.parseKeyValues(text) == expected)
    }

    @Test("single values", arguments: [
        ("max\n", nil), ("1024\n", 1024), (" 8 ", 8), ("", nil), ("-1", nil),
    ] as [(String, UInt64?)])
    func limits(_ text: String, _ expected: UInt64?) {
        #expect(CgroupParsing.parseLimit(text) == expected)
    }

    @Test func pidList() {
        #expect(CgroupParsing.parsePIDList("12\n345\n\n7\n") == [12, 345, 7])
        #expect(CgroupParsing.parsePIDList("") == [])
    }

    @Test func controllerList() {
        #expect(CgroupParsing.parseControllerList("cpuset cpu io memory pids\n") == ["cpuset", "cpu", "io", "memory", "pids"])
        #expect(CgroupParsing.parseControllerList("\n") == [])
    }

    @Test("pids limit hits (with v1 fallback)", arguments: [
        ("max 4\n", nil, nil, "8\n", 4),
        ("max 0\n", "8", "8", "8", 0),       // events wins over the heuristic
        (nil, "8\n", "2\n", "8\n", 1),       // no pids.events: peak reached max
        (nil, "5\n", "2\n", "8\n", 0),
        (nil, nil, "8\n", "8\n", 1),         // no pids.peak either: current
        (nil, "100", "100", "max\n", 0),     // unlimited
        (nil, nil, nil, nil, 0),
    ] as [(String?, String?, String?, String?, Int)])
    func pidsHits(_ events: String?, _ peak: String?, _ current: String?, _ max: String?, _ expected: Int) {
        #expect(CgroupParsing.pidsLimitHits(events: events, peak: peak, current: current, max: max) == expected)
    }
}

@Suite("cgroup names and formatting")
struct CgroupFormattingTests {
    @Test("cpu.max formatting", arguments: [
        (nil, 100_000, "max 100000"),
        (50_000, 100_000, "50000 100000"),
        (200_000, 100_000, "200000 100000"),
        (nil, 250_000, "max 250000"),
    ] as [(Int?, Int, String)])
    func cpuMax(_ quota: Int?, _ period: Int, _ expected: String) throws {
        #expect(CgroupParsing.cpuMax(quotaMicros: quota, periodMicros: period) == expected)
        let parsed = try #require(CgroupParsing.parseCPUMax(expected))
        #expect(parsed.quotaMicros == quota)
        #expect(parsed.periodMicros == period)
    }

    @Test func cfsQuota() {
        #expect(CgroupParsing.cfsQuota(quotaMicros: nil) == "-1")
        #expect(CgroupParsing.cfsQuota(quotaMicros: 50_000) == "50000")
    }

    @Test("valid task names", arguments: [
        "a", "task-1", "test_ABC.9", "x.y", String(repeating: "n", count: 64), "-leading-dash", ".hidden",
    ])
    func validNames(_ name: String) throws {
        #expect(CgroupParsing.isValidTaskName(name))
        try CgroupParsing.validateTaskName(name)
    }

    @Test("invalid task names", arguments: [
        "", ".", "..", "a..b", "../x", "a/b", "/abs", "sp ace", "tab\t", "nl\n", "ünï", "semi;colon",
        String(repeating: "n", count: 65), "star*",
    ])
    func invalidNames(_ name: String) {
        #expect(!CgroupParsing.isValidTaskName(name))
        #expect(throws: CgroupError.self) { try CgroupParsing.validateTaskName(name) }
    }

    @Test func errorDescriptions() {
        let withErrno = CgroupError(stage: "write", path: "/sys/fs/cgroup/pids/sealbox/x/pids.max", errno: 22)
        #expect(withErrno.description == "write /sys/fs/cgroup/pids/sealbox/x/pids.max: EINVAL (Invalid argument)")
        let withMessage = CgroupError(stage: "rmdir", path: "/d", errno: 16, message: "call killAll() first")
        #expect(withMessage.description == "rmdir /d: EBUSY (Device or resource busy): call killAll() first")
        let plain = CgroupError(stage: "detect", path: "/r", message: "nope")
        #expect(plain.description == "detect /r: nope")
        #expect(CgroupError.errnoName(9999) == "errno 9999")
    }

    @Test func limitsDefaults() {
        let limits = CgroupLimits()
        #expect(limits.memoryBytes == nil)
        #expect(limits.pids == nil)
        #expect(limits.cpuQuotaMicros == nil)
        #expect(limits.cpuPeriodMicros == 100_000)
        #expect(CgroupUsage() == CgroupUsage(peakMemoryBytes: nil, cpuNanos: nil, oomKills: 0, pidsLimitHits: 0))
    }

    @Test func noDriverDoesNothing() throws {
        let driver = NoCgroupDriver(reason: "test")
        #expect(driver.version == .none)
        let task = try driver.create(name: "nothing", limits: CgroupLimits(memoryBytes: 1))
        #expect(task.version == .none)
        #expect(task.cloneIntoFD == -1)
        #expect(task.procsFDs.isEmpty)
        #expect(task.usage() == CgroupUsage())
        try task.killAll()
        try task.destroy()
        try task.destroy()
        #expect(throws: CgroupError.self) { try driver.create(name: "../x", limits: CgroupLimits()) }
    }

    @Test func v1DriverNeedsMemoryAndPids() {
        #expect {
            try Cgroups.v1(mountinfo: cgroupPureV2MountinfoFixture)
        } throws: { error in
            (error as? CgroupError)?.message.contains("memory hierarchy is not mounted") == true
        }
    }
}
