import Glibc

/// A C library function looked up at run time: glibc extensions the Glibc module hides
/// (_GNU_SOURCE API such as pipe2 or posix_spawn_file_actions_addclosefrom_np) and variadic
/// functions Swift cannot import (prctl). nil when this C library lacks it.
public func cLibrarySymbol<T>(_ name: String, as: T.Type) -> T? {
    guard let handle = dlopen(nil, RTLD_NOW), let p = dlsym(handle, name) else { return nil }
    return unsafeBitCast(p, to: T.self)
}
