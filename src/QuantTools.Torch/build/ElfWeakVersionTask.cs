// Compiled by MSBuild's RoslynCodeTaskFactory (see QuantTools.Torch.targets); not part of any assembly.
//
// Marks chosen symbol-version requirements (.gnu.version_r Vernaux entries) of ELF64 little-endian shared
// libraries as weak (vna_flags |= VER_FLG_WEAK), but only for versions that the system's libstdc++ does not
// define. The dynamic loader then reports a missing weak version as a warning (LD_DEBUG) instead of refusing
// to load the library. The file is rewritten through a temporary file and a rename, so a hard link into the
// NuGet cache is never modified in place.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class QtElfWeakVersion : Microsoft.Build.Utilities.Task
{
    /// <summary>Libraries to patch (missing files are skipped with a message).</summary>
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>Version names to weaken when the system library lacks them, separated by ';'.</summary>
    [Required] public string Versions { get; set; } = "";

    /// <summary>The needed library that defines those versions (a DT_NEEDED name, e.g. libstdc++.so.6).</summary>
    public string NeededLibrary { get; set; } = "libstdc++.so.6";

    /// <summary>Where to look for the system copy of <see cref="NeededLibrary"/>, separated by ';'.</summary>
    public string SearchDirectories { get; set; } =
        "/usr/lib/x86_64-linux-gnu;/lib/x86_64-linux-gnu;/usr/lib64;/lib64;/usr/lib;/lib;/usr/local/lib64;/usr/local/lib";

    private const uint SHT_GNU_verdef = 0x6ffffffd;
    private const uint SHT_GNU_verneed = 0x6ffffffe;
    private const ushort VER_FLG_WEAK = 0x2;

    public override bool Execute()
    {
        var wanted = new List<string>();
        foreach (var v in Versions.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries))
            wanted.Add(v.Trim());

        string systemLib = FindSystemLibrary();
        HashSet<string> defined = null;
        if (systemLib == null)
            Log.LogWarning("QuantTools.Torch: no system {0} found in {1}; marking {2} weak unconditionally",
                NeededLibrary, SearchDirectories, string.Join(", ", wanted));
        else
        {
            try { defined = new HashSet<string>(Elf.Read(File.ReadAllBytes(systemLib)).DefinedVersions(), StringComparer.Ordinal); }
            catch (InvalidDataException e)
            {
                Log.LogWarning("QuantTools.Torch: cannot read version definitions of {0} ({1}); marking {2} weak unconditionally",
                    systemLib, e.Message, string.Join(", ", wanted));
            }
        }

        var missing = new List<string>();
        foreach (var v in wanted)
            if (defined == null || !defined.Contains(v)) missing.Add(v);

        foreach (var item in Files)
        {
            string path = Path.GetFullPath(item.ItemSpec);
            if (!File.Exists(path))
            {
                Log.LogMessage(MessageImportance.Low, "QuantTools.Torch: {0} does not exist; nothing to patch", path);
                continue;
            }
            byte[] bytes = File.ReadAllBytes(path);
            Elf elf;
            try { elf = Elf.Read(bytes); }
            catch (InvalidDataException e)
            {
                Log.LogError("QuantTools.Torch: {0} is not a valid ELF64 little-endian file: {1}", path, e.Message);
                return false;
            }

            // Report any other version of the needed library that this system lacks (nothing is done about those).
            if (defined != null)
                foreach (var need in elf.NeededVersions())
                    if (need.File == NeededLibrary && !defined.Contains(need.Name) && !wanted.Contains(need.Name) && (need.Flags & VER_FLG_WEAK) == 0)
                        Log.LogWarning("QuantTools.Torch: {0} needs {1} {2}, which {3} does not define; it will probably not load",
                            Path.GetFileName(path), NeededLibrary, need.Name, systemLib);

            if (missing.Count == 0)
            {
                Log.LogMessage(MessageImportance.Normal, "QuantTools.Torch: {0} defines {1}; {2} left unchanged",
                    systemLib, string.Join(", ", wanted), path);
                continue;
            }

            int patched = 0, already = 0;
            var found = new HashSet<string>(StringComparer.Ordinal);
            foreach (var need in elf.NeededVersions())
            {
                if (need.File != NeededLibrary || !missing.Contains(need.Name)) continue;
                found.Add(need.Name);
                if ((need.Flags & VER_FLG_WEAK) != 0) { already++; continue; }
                Elf.WriteU16(bytes, need.FlagsOffset, (ushort)(need.Flags | VER_FLG_WEAK));
                patched++;
            }
            foreach (var v in missing)
                if (!found.Contains(v))
                    Log.LogMessage(MessageImportance.Normal, "QuantTools.Torch: {0} does not require {1} {2}; nothing to do",
                        path, NeededLibrary, v);
            if (patched == 0)
            {
                if (already > 0)
                    Log.LogMessage(MessageImportance.High, "QuantTools.Torch: {0}: {1} already marked weak (system {2} lacks it)",
                        path, string.Join(", ", found), NeededLibrary);
                continue;
            }

            // Re-read the patched image to make sure the result still parses and carries the flag.
            var check = Elf.Read(bytes);
            foreach (var need in check.NeededVersions())
                if (need.File == NeededLibrary && missing.Contains(need.Name) && (need.Flags & VER_FLG_WEAK) == 0)
                {
                    Log.LogError("QuantTools.Torch: patch verification failed for {0} {1}", path, need.Name);
                    return false;
                }

            string tmp = path + ".qtpatch.tmp";
            File.WriteAllBytes(tmp, bytes);
            File.Delete(path); // unlink first: never write through a hard link into the package cache
            File.Move(tmp, path);
            Log.LogMessage(MessageImportance.High,
                "QuantTools.Torch: system {0} ({1}) lacks {2}; marked {3} version requirement(s) weak (VER_FLG_WEAK) in {4}",
                NeededLibrary, systemLib ?? "not found", string.Join(", ", found), patched, path);
        }
        return !Log.HasLoggedErrors;
    }

    private string FindSystemLibrary()
    {
        foreach (var dir in SearchDirectories.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir.Trim(), NeededLibrary);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    internal readonly struct NeededVersion
    {
        public NeededVersion(string file, string name, ushort flags, int flagsOffset)
        { File = file; Name = name; Flags = flags; FlagsOffset = flagsOffset; }
        public string File { get; }
        public string Name { get; }
        public ushort Flags { get; }
        public int FlagsOffset { get; }
    }

    /// <summary>Minimal ELF64 little-endian reader: section headers, .gnu.version_r, .gnu.version_d, string tables.
    /// Every offset and count is validated against the file size; loops are bounded by the declared counts.</summary>
    internal sealed class Elf
    {
        private readonly byte[] _b;
        private readonly List<(uint Type, ulong Offset, ulong Size, uint Link, uint Info)> _sections = new();

        private Elf(byte[] b) { _b = b; }

        public static Elf Read(byte[] b)
        {
            var e = new Elf(b);
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
                throw new InvalidDataException("missing ELF magic");
            if (b[4] != 2) throw new InvalidDataException("not ELFCLASS64");
            if (b[5] != 1) throw new InvalidDataException("not little-endian");
            ulong shoff = e.U64(0x28);
            ushort shentsize = e.U16(0x3A);
            uint shnum = e.U16(0x3C);
            if (shoff == 0) throw new InvalidDataException("no section header table");
            if (shentsize < 64) throw new InvalidDataException("section header entry size " + shentsize + " < 64");
            e.Check(shoff, shentsize, "section header 0");
            if (shnum == 0) // SHN_XINDEX convention: the real count is in section 0's sh_size
            {
                ulong n = e.U64(Checked(shoff, 0x20));
                if (n > int.MaxValue) throw new InvalidDataException("section count " + n + " too large");
                shnum = (uint)n;
            }
            e.Check(shoff, (ulong)shnum * shentsize, "section header table");
            for (uint i = 0; i < shnum; i++)
            {
                ulong h = shoff + (ulong)i * shentsize;
                uint type = e.U32(h + 4);
                ulong off = e.U64(h + 0x18), size = e.U64(h + 0x20);
                uint link = e.U32(h + 0x28), info = e.U32(h + 0x2C);
                if (type != 8 /* SHT_NOBITS */ && type != 0) e.Check(off, size, "section " + i);
                e._sections.Add((type, off, size, link, info));
            }
            return e;
        }

        /// <summary>Every (file, version) pair of the Verneed/Vernaux chains, with the file offset of vna_flags.</summary>
        public List<NeededVersion> NeededVersions()
        {
            var r = new List<NeededVersion>();
            foreach (var s in _sections)
            {
                if (s.Type != SHT_GNU_verneed) continue;
                var str = StringTable(s.Link);
                ulong end = s.Offset + s.Size;
                ulong vn = s.Offset;
                for (uint i = 0; i < s.Info; i++)
                {
                    CheckIn(vn, 16, s.Offset, end, "Verneed");
                    ushort cnt = U16(vn + 2);
                    string file = Str(str, U32(vn + 4));
                    uint aux = U32(vn + 8), next = U32(vn + 12);
                    ulong a = Checked(vn, aux);
                    for (int j = 0; j < cnt; j++)
                    {
                        CheckIn(a, 16, s.Offset, end, "Vernaux");
                        ushort flags = U16(a + 4);
                        string name = Str(str, U32(a + 8));
                        r.Add(new NeededVersion(file, name, flags, checked((int)(a + 4))));
                        uint anext = U32(a + 12);
                        if (anext == 0) break;
                        a = Checked(a, anext);
                    }
                    if (next == 0) break;
                    vn = Checked(vn, next);
                }
            }
            return r;
        }

        /// <summary>Names defined by the Verdef/Verdaux chains (the first Verdaux name of each Verdef).</summary>
        public List<string> DefinedVersions()
        {
            var r = new List<string>();
            foreach (var s in _sections)
            {
                if (s.Type != SHT_GNU_verdef) continue;
                var str = StringTable(s.Link);
                ulong end = s.Offset + s.Size;
                ulong vd = s.Offset;
                for (uint i = 0; i < s.Info; i++)
                {
                    CheckIn(vd, 20, s.Offset, end, "Verdef");
                    ushort cnt = U16(vd + 6);
                    uint aux = U32(vd + 12), next = U32(vd + 16);
                    if (cnt > 0)
                    {
                        ulong a = Checked(vd, aux);
                        CheckIn(a, 8, s.Offset, end, "Verdaux");
                        r.Add(Str(str, U32(a)));
                    }
                    if (next == 0) break;
                    vd = Checked(vd, next);
                }
            }
            return r;
        }

        private (ulong Offset, ulong Size) StringTable(uint index)
        {
            if (index >= _sections.Count) throw new InvalidDataException("string table index " + index + " out of range");
            var s = _sections[(int)index];
            if (s.Type != 3 /* SHT_STRTAB */) throw new InvalidDataException("linked section " + index + " is not a string table");
            return (s.Offset, s.Size);
        }

        private string Str((ulong Offset, ulong Size) table, uint at)
        {
            if (at >= table.Size) throw new InvalidDataException("string offset " + at + " outside the string table");
            int start = checked((int)(table.Offset + at));
            int limit = checked((int)(table.Offset + table.Size));
            int z = Array.IndexOf(_b, (byte)0, start, limit - start);
            if (z < 0) throw new InvalidDataException("unterminated string at " + start);
            return Encoding.ASCII.GetString(_b, start, z - start);
        }

        private static ulong Checked(ulong a, ulong b)
        {
            ulong r = a + b;
            if (r < a) throw new InvalidDataException("offset overflow");
            return r;
        }

        private void Check(ulong off, ulong len, string what)
        {
            if (off > (ulong)_b.Length || len > (ulong)_b.Length - off)
                throw new InvalidDataException(what + " (offset " + off + ", " + len + " bytes) lies outside the file (" + _b.Length + " bytes)");
        }

        private void CheckIn(ulong off, ulong len, ulong lo, ulong hi, string what)
        {
            if (off < lo || off > hi || len > hi - off)
                throw new InvalidDataException(what + " entry at " + off + " lies outside its section [" + lo + ", " + hi + ")");
            Check(off, len, what);
        }

        private ushort U16(ulong o) { Check(o, 2, "u16"); return (ushort)(_b[o] | _b[o + 1] << 8); }
        private uint U32(ulong o) { Check(o, 4, "u32"); return (uint)(_b[o] | _b[o + 1] << 8 | _b[o + 2] << 16 | _b[o + 3] << 24); }
        private ulong U64(ulong o) { Check(o, 8, "u64"); return U32(o) | (ulong)U32(o + 4) << 32; }

        public static void WriteU16(byte[] b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
    }
}
