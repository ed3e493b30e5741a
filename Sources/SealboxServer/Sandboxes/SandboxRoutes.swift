import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import NIOCore
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxRuntime

/// Live sandboxes over HTTP (docs/sandboxes.md):
///
///   POST   /v1/sandboxes                        a sandbox (201), in a session when asked (its /work the
///                                               session's last seal, its steps sealed); 429 past the bounds
///   GET    /v1/sandboxes                        the caller's sandboxes, live and recently ended
///   GET    /v1/sandboxes/{id}                   one, with its clocks, limits and usage
///   DELETE /v1/sandboxes/{id}                   ends it: everything in it is killed (?keep_workspace=true:
///                                               hibernated instead, its /work kept)
///   POST   /v1/sandboxes/{id}/pause             freezes it (no CPU, memory kept); /resume thaws it
///   POST   /v1/sandboxes/{id}/hibernate         its /work into the blob store, its jail ended; /wake makes
///                                               a new jail from it (same id, session and tools)
///   POST   /v1/sandboxes/{id}/commands          runs a command in it; 201 with a run's result object,
///                                               or its output as it comes (Accept: application/x-ndjson
///                                               or text/event-stream, as POST /v1/runs)
///   PUT    /v1/sandboxes/{id}/files/{path}      uploads the body to /work/{path} (parents made)
///   GET    /v1/sandboxes/{id}/files/{path}      downloads /work/{path}
///   DELETE /v1/sandboxes/{id}/files/{path}      removes it (?recursive=true for a directory with contents)
///   GET    /v1/sandboxes/{id}/files?dir=PATH    lists a directory, paged (?after=NAME&limit=N)
///   GET    /v1/sandboxes/{id}/stat/{path}       what is at /work/{path}
///   PUT    /v1/sandboxes/{id}/directories/{path} makes a directory (and its parents)
///   POST   /v1/sandboxes/{id}/contexts          a code context (a Python interpreter kept between chunks)
///   GET    /v1/sandboxes/{id}/contexts          its contexts; DELETE …/contexts/{ctx} ends one
///   POST   /v1/sandboxes/{id}/contexts/{ctx}/code  runs a chunk: output, value, traceback, PNGs
///
/// Another tenant's sandbox is a 404 like a missing one; an ended one answers 410 with why it
/// ended (GET still shows it for a while).
extension SealboxAPI {
    func addSandboxRoutes(to router: Router<SealboxRequestContext>) {
        router.post("v1/sandboxes") { request, context in try await self.createSandbox(request, context.requireIdentity()) }
        router.get("v1/sandboxes") { _, context in try self.listSandboxes(context.requireIdentity()) }
        router.get("v1/sandboxes/:id") { _, context in
            try Self.json(.ok, self.sandboxes.view(context.parameters.require("id"), visibleTo: context.requireIdentity()))
        }
        router.delete("v1/sandboxes/:id") { request, context in
            let identity = try context.requireIdentity()
            let id = try context.parameters.require("id")
            if try Self.flag(request, "keep_workspace") {
                // Kept: the sandbox is hibernated (wake brings it back), not deleted.
                let sandbox = try self.sandboxes.sandbox(id, visibleTo: identity)
                return try Self.json(.ok, try await self.sandboxService.hibernate(sandbox, by: identity.keyID))
            }
            return try self.deleteSandbox(id, identity)
        }
        router.post("v1/sandboxes/:id/pause") { _, context in try self.pauseSandbox(context.parameters.require("id"), true, context.requireIdentity()) }
        router.post("v1/sandboxes/:id/resume") { _, context in try self.pauseSandbox(context.parameters.require("id"), false, context.requireIdentity()) }
        router.post("v1/sandboxes/:id/hibernate") { _, context in
            let identity = try context.requireIdentity()
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: identity)
            return try Self.json(.ok, try await self.sandboxService.hibernate(sandbox, by: identity.keyID))
        }
        router.post("v1/sandboxes/:id/wake") { _, context in
            let identity = try context.requireIdentity()
            let woken = try await self.sandboxService.wake(context.parameters.require("id"), for: identity, caller: self.caller(identity))
            return try Self.json(.ok, woken.view(nowMs: SandboxRegistry.nowMs()))
        }
        router.post("v1/sandboxes/:id/commands") { request, context in
            try await self.runCommand(context.parameters.require("id"), request, context.requireIdentity())
        }
        router.get("v1/sandboxes/:id/files") { request, context in
            try self.listFiles(context.parameters.require("id"), request, context.requireIdentity())
        }
        router.get("v1/sandboxes/:id/files/**") { _, context in
            try await self.download(context.parameters.require("id"), Self.filePath(context), context.requireIdentity())
        }
        router.put("v1/sandboxes/:id/files/**") { request, context in
            try await self.upload(context.parameters.require("id"), Self.filePath(context), request, context.requireIdentity())
        }
        router.delete("v1/sandboxes/:id/files/**") { request, context in
            try await self.removeFile(context.parameters.require("id"), Self.filePath(context), request, context.requireIdentity())
        }
        router.get("v1/sandboxes/:id/stat/**") { _, context in
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: context.requireIdentity())
            let path = try Self.filePath(context)
            return try await sandbox.using { try Self.json(.ok, try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.stat(path) }) }
        }
        router.post("v1/sandboxes/:id/contexts") { request, context in
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: context.requireIdentity())
            let wire = try await StrictBody.decode(SandboxContextRequest.Wire.self, request, limit: Self.sandboxBodyLimit, emptyAllowed: true)
            let made = try await self.sandboxService.startContext(wire, in: sandbox)
            var response = try Self.json(.created, ContextView(made))
            response.headers[.location] = "/v1/sandboxes/\(sandbox.id)/contexts/\(made.id)"
            return response
        }
        router.get("v1/sandboxes/:id/contexts") { _, context in
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: context.requireIdentity())
            struct Page: Encodable { var contexts: [ContextView] }
            return try Self.json(.ok, Page(contexts: sandbox.contexts.map(ContextView.init)))
        }
        router.delete("v1/sandboxes/:id/contexts/:ctx") { _, context in
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: context.requireIdentity())
            try sandbox.removeContext(context.parameters.require("ctx"))
            return Response(status: .noContent)
        }
        router.post("v1/sandboxes/:id/contexts/:ctx/code") { request, context in
            let identity = try context.requireIdentity()
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: identity)
            let live = try sandbox.context(context.parameters.require("ctx"))
            guard let wire = try await StrictBody.decode(SandboxChunkRequest.Wire.self, request, limit: SandboxChunkRequest.maximumCodeBytes + 4096,
                                                         emptyAllowed: false) else {
                throw APIError.badRequest("the body must be a JSON object with code")
            }
            return try Self.json(.ok, try await self.sandboxService.runChunk(wire, in: live, of: sandbox, caller: self.caller(identity)))
        }
        router.put("v1/sandboxes/:id/directories/**") { _, context in
            let sandbox = try self.sandboxes.sandbox(context.parameters.require("id"), visibleTo: context.requireIdentity())
            let path = try Self.filePath(context)
            return try await sandbox.using {
                try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.makeDirectory(path) }
                return try Self.json(.created, try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.stat(path) })
            }
        }
    }

    static let sandboxBodyLimit = 24 << 20

    /// Sandboxes made and commanded the one way HTTP and MCP share.
    public var sandboxService: SandboxService {
        SandboxService(registry: sandboxes, executor: { [executor] in executor }, runs: runs, defaultLimits: configuration.defaultLimits,
                       maxLimits: configuration.maxLimits, liveJails: liveJails, safe: { [self] in tenantSafe($0) })
    }

    func createSandbox(_ request: Request, _ identity: APIIdentity) async throws -> Response {
        var wire = try await StrictBody.decode(SandboxCreateRequest.Wire.self, request, limit: Self.sandboxBodyLimit, emptyAllowed: true)
        if wire?.new_session == true, wire?.session == nil {
            // Made (and owned by the caller) before the sandbox: a sandbox that then cannot be
            // made leaves an empty session, as POST /v1/sessions would.
            wire?.session = try newSession(workspaceLimitBytes: SessionInfo.defaultWorkspaceLimit, for: identity).id
            wire?.new_session = nil
        }
        let sandbox = try await sandboxService.create(wire, for: identity, caller: caller(identity))
        var response = try Self.json(.created, sandbox.view(nowMs: SandboxRegistry.nowMs()))
        response.headers[.location] = "/v1/sandboxes/\(sandbox.id)"
        return response
    }

    func listSandboxes(_ identity: APIIdentity) throws -> Response {
        struct Page: Encodable { var sandboxes: [SandboxView] }
        return try Self.json(.ok, Page(sandboxes: sandboxes.list(visibleTo: identity)))
    }

    func deleteSandbox(_ id: String, _ identity: APIIdentity) throws -> Response {
        if let deleted = sandboxes.deleteHibernated(id, by: identity) { return try Self.json(.ok, deleted) }
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity, includingEnded: true)
        sandboxes.end(sandbox, reason: "deleted by key \(identity.keyID)")
        return try Self.json(.ok, sandbox.view(nowMs: SandboxRegistry.nowMs()))
    }

    func pauseSandbox(_ id: String, _ paused: Bool, _ identity: APIIdentity) throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        do throws(JailError) {
            try sandbox.jail.setPaused(paused)
        } catch {
            if let ended = sandbox.endedError { throw ended }
            throw tenantSafe(APIError(.conflict, "cannot_pause", "sandbox \(id) cannot be \(paused ? "paused" : "resumed") on this host: \(error.message)"))
        }
        sandbox.touch()
        return try Self.json(.ok, sandbox.view(nowMs: SandboxRegistry.nowMs()))
    }

    func runCommand(_ id: String, _ request: Request, _ identity: APIIdentity) async throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        guard let wire = try await StrictBody.decode(SandboxCommandRequest.Wire.self, request, limit: configuration.maxBodyBytes, emptyAllowed: false) else {
            throw APIError.badRequest("the body must be a JSON object")
        }
        let command = try sandboxService.command(wire, in: sandbox)
        let release = try await sandboxService.admit(in: sandbox, caller: caller(identity))
        if let format = RunStreamFormat(accept: request.headers[.accept]) {
            // The command belongs to the server, as a streamed run does: a client that goes
            // away does not end it; its output is then dropped.
            let (events, sink) = AsyncStream.makeStream(of: RunEvent.self)
            let commandID = RandomID.run()
            var command = command
            command.id = commandID
            sink.yield(.started(id: commandID))
            Task { [command, sandboxService] in
                defer { release() }
                let outcome = await sandboxService.execute(command, step: wire.step, in: sandbox) { chunk in sink.yield(.output(chunk.stream, chunk.bytes)) }
                switch outcome {
                case .success(let result): sink.yield(.result(result))
                case .failure(let error): sink.yield(.failed(error))
                }
                sink.finish()
            }
            return Self.eventStream(events, closing: sink, format: format)
        }
        defer { release() }
        let result = try await sandboxService.execute(command, step: wire.step, in: sandbox, output: nil).get()
        let encoded = try Self.encoder.encode(result)
        return Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encoded)))
    }

    // MARK: files

    /// The `{path}` of a files route, percent-decoded: relative to /work, checked by `LiveFiles`.
    static func filePath(_ context: SealboxRequestContext) throws(APIError) -> String {
        let raw = context.parameters[Parameters.recursiveCaptureKey].map(String.init) ?? ""
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError.badRequest("the path is not valid percent-encoded UTF-8", field: "path")
        }
        return decoded
    }

    /// A `LiveFiles` call, its failure as the API answers it.
    static func fileCall<T>(_ body: () throws(LiveFileError) -> T) throws(APIError) -> T {
        do {
            return try body()
        } catch {
            throw APIError(error)
        }
    }

    func listFiles(_ id: String, _ request: Request, _ identity: APIIdentity) throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        let query = request.uri.queryParameters
        let directory = query["dir"].map(String.init) ?? ""
        var limit = 1000
        if let text = query["limit"] {
            guard let n = Int(text), n >= 1, n <= LiveFiles.maximumPageSize else {
                throw APIError.badRequest("limit must be between 1 and \(LiveFiles.maximumPageSize)", field: "limit")
            }
            limit = n
        }
        let after = query["after"].map(String.init)
        struct Page: Encodable {
            var entries: [LiveFileInfo]
            var next: String?
            var skipped: Int
        }
        let page = try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.list(directory, after: after, limit: limit) }
        return try Self.json(.ok, Page(entries: page.entries, next: page.next, skipped: page.skipped))
    }

    func download(_ id: String, _ path: String, _ identity: APIIdentity) async throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        let (fd, size) = try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.openForReading(path) }
        let file = OpenFile(fd)
        // Busy while the body is sent: the idle clock starts when the transfer ended.
        let done = sandbox.beginUse()
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentLength: String(size)],
                        body: ResponseBody(contentLength: Int(size)) { writer in
                            defer { done() }
                            var left = size
                            while left > 0 {
                                let chunk = try file.read(max: Int(min(left, 256 << 10)))
                                if chunk.readableBytes == 0 { break }  // shrunk meanwhile: the length promised cannot be kept
                                left -= UInt64(chunk.readableBytes)
                                try await writer.write(chunk)
                            }
                            try await writer.finish(nil)
                        })
    }

    func upload(_ id: String, _ path: String, _ request: Request, _ identity: APIIdentity) async throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        var mode: UInt32 = 0o644
        if let text = request.uri.queryParameters["mode"] {
            guard let parsed = UInt32(text, radix: 8), parsed <= 0o777 else {
                throw APIError.badRequest("mode must be octal permission bits, 0 to 777", field: "mode")
            }
            mode = parsed
        }
        return try await sandbox.using {
            let upload = try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.beginUpload(path, mode: mode) }
            do {
                for try await buffer in request.body {
                    try buffer.withUnsafeReadableBytes { bytes throws(APIError) in
                        try Self.fileCall { () throws(LiveFileError) in try upload.write(bytes) }
                    }
                }
                try Self.fileCall { () throws(LiveFileError) in try upload.commit() }
            } catch {
                upload.abort()
                throw error
            }
            return try Self.json(.created, try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.stat(path) })
        }
    }

    /// A query parameter that is true or false (absent: false); 400 naming it otherwise.
    static func flag(_ request: Request, _ name: String) throws(APIError) -> Bool {
        switch request.uri.queryParameters[name[...]].map(String.init) {
        case nil, "false": return false
        case "true": return true
        default: throw APIError.badRequest("\(name) must be true or false", field: name)
        }
    }

    func removeFile(_ id: String, _ path: String, _ request: Request, _ identity: APIIdentity) async throws -> Response {
        let sandbox = try sandboxes.sandbox(id, visibleTo: identity)
        let recursive = try Self.flag(request, "recursive")
        return try await sandbox.using {
            try Self.fileCall { () throws(LiveFileError) in try sandbox.jail.files.remove(path, recursive: recursive) }
            return Response(status: .noContent)
        }
    }
}

extension APIError {
    /// A file operation's failure: the path as the caller gave it, never a host path.
    public init(_ error: LiveFileError) {
        switch error.kind {
        case .badPath: self.init(.badRequest, "bad_path", error.message, field: "path")
        case .notFound: self.init(.notFound, "not_found", error.message, field: "path")
        case .notAFile, .notADirectory, .conflict: self.init(.conflict, error.kind.rawValue, error.message, field: "path")
        case .noSpace: self.init(.init(code: 507, reasonPhrase: "Insufficient Storage"), "workspace_full", error.message)
        case .permissionDenied: self.init(.forbidden, "permission_denied", error.message, field: "path")
        case .sandboxEnded: self.init(.gone, "sandbox_ended", error.message)
        case .io: self.init(.internalServerError, "io", error.message)
        }
    }
}

/// A descriptor read by a response body, closed when the body is done with it.
final class OpenFile: Sendable {
    let fd: Int32

    init(_ fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func read(max: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: max)
        var failure: Int32?
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: max) { bytes in
            let n = Interrupted.retry { Glibc.read(fd, bytes.baseAddress, max) }
            if n < 0 { failure = errno }
            return Swift.max(n, 0)
        }
        if let failure { throw APIError(.internalServerError, "io", "read failed: \(ErrnoName.describe(failure))") }
        return buffer
    }
}

/// A code context as the API shows it.
struct ContextView: Encodable {
    var id: String
    var language: String
    /// running or ended.
    var state: String
    var endReason: String?

    init(_ context: LiveContext) {
        id = context.id
        language = context.language
        endReason = context.endReason
        state = endReason == nil ? "running" : "ended"
    }

    enum CodingKeys: String, CodingKey {
        case id, language, state
        case endReason = "end_reason"
    }
}
