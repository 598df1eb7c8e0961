// `pnpm gen`: regenerates shared/src/gen/ from shared/schema/pangea.capnp.
//
// One run of Debian's `capnp compile -o-` yields the CodeGeneratorRequest; from it we write
//  - pangea.ts: capnp-es's classes (an independent implementation the codec is tested against);
//  - layout.ts: each struct's section sizes and each field's offset, the table our codec reads
//    and writes frames with (see src/wire/frame-reader.ts for why the codec does its own I/O).
// The committed output must equal a fresh generation; gen.test.ts checks it.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CodeGeneratorRequest, Field, type Node, Type } from "capnp-es/capnp/schema";
import { compileAll } from "capnp-es/compiler";
import * as capnp from "capnp-es";

export const sharedRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
export const schemaPath = "schema/pangea.capnp";

/** Generates every file of src/gen/ in memory: file name → contents. Needs `capnp` on PATH. */
export async function generate(
  capnpBinary = process.env.CAPNP ?? "capnp",
): Promise<Map<string, string>> {
  const request = execFileSync(capnpBinary, ["compile", "-o-", schemaPath], {
    cwd: sharedRoot,
    env: { ...process.env, PWD: sharedRoot },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = new Map<string, string>();
  const { files } = await compileAll(request, { ts: true, js: false, dts: false });
  const ts = [...files.entries()].find(([name]) => name.endsWith(".ts"));
  if (!ts) throw new Error("capnp-es produced no TypeScript output");
  out.set("pangea.ts", ts[1]);
  out.set("layout.ts", generateLayout(request));
  return out;
}

const SLOT_KINDS: Record<number, [kind: string, bits: number]> = {
  [Type.VOID]: ["void", 0],
  [Type.BOOL]: ["bool", 1],
  [Type.INT8]: ["i8", 8],
  [Type.INT16]: ["i16", 16],
  [Type.INT32]: ["i32", 32],
  [Type.INT64]: ["i64", 64],
  [Type.UINT8]: ["u8", 8],
  [Type.UINT16]: ["u16", 16],
  [Type.UINT32]: ["u32", 32],
  [Type.UINT64]: ["u64", 64],
  [Type.FLOAT32]: ["f32", 32],
  [Type.FLOAT64]: ["f64", 64],
  [Type.ENUM]: ["u16", 16],
};

function generateLayout(requestBytes: Buffer): string {
  const message = new capnp.Message(requestBytes, false);
  const request = message.getRoot(CodeGeneratorRequest);
  const nodes = new Map<bigint, Node>();
  for (const node of request.nodes) nodes.set(node.id, node);

  const structs: string[] = [];
  const enums: string[] = [];
  const nameOf = (node: Node) => node.displayName.slice(node.displayNamePrefixLength);
  // A group's name is its parent's name, a dot, and the group's field name ("Message.payload").
  const groupNames = new Map<bigint, string>();

  const sorted = [...nodes.values()].sort((a, b) => (a.displayName < b.displayName ? -1 : 1));
  for (const node of sorted) {
    if (node._isStruct && !node.struct.isGroup) visitStruct(node, nameOf(node));
    if (node._isEnum) {
      const names = [...node.enum.enumerants].map((e) => JSON.stringify(e.name));
      enums.push(`  ${nameOf(node)}: [${names.join(", ")}],`);
    }
  }

  function typeName(type: Type): string {
    if (type._isStruct) return nameOf(nodes.get(type.struct.typeId)!);
    if (type._isEnum) return nameOf(nodes.get(type.enum.typeId)!);
    return "";
  }

  function describeType(type: Type): string {
    switch (type.which()) {
      case Type.TEXT:
        return `kind: "text"`;
      case Type.DATA:
        return `kind: "data"`;
      case Type.STRUCT:
        return `kind: "struct", type: "${typeName(type)}"`;
      case Type.LIST: {
        const element = type.list.elementType;
        const inner = describeType(element);
        return `kind: "list", element: { ${inner} }`;
      }
      default: {
        const slot = SLOT_KINDS[type.which()];
        if (!slot) throw new Error(`unsupported field type ${type.which()} in the schema`);
        return type._isEnum
          ? `kind: "${slot[0]}", enum: "${typeName(type)}"`
          : `kind: "${slot[0]}"`;
      }
    }
  }

  function visitStruct(node: Node, name: string): void {
    const s = node.struct;
    const fields: string[] = [];
    for (const field of s.fields) {
      const when =
        field.discriminantValue === Field.NO_DISCRIMINANT
          ? ""
          : `, when: ${field.discriminantValue}`;
      if (field._isGroup) {
        const groupName = `${name}.${field.name}`;
        groupNames.set(field.group.typeId, groupName);
        fields.push(`      ${field.name}: { kind: "group", type: "${groupName}"${when} },`);
        visitStruct(nodes.get(field.group.typeId)!, groupName);
        continue;
      }
      const slot = field.slot;
      if (slot.hadExplicitDefault) {
        // The codec treats every absent field as zero; a non-zero default would need XOR
        // encoding, which nothing in our protocol warrants.
        throw new Error(`${name}.${field.name}: explicit defaults are not supported`);
      }
      const type = slot.type;
      const described = describeType(type);
      const pointer = type._isText || type._isData || type._isList || type._isStruct;
      let at: number;
      if (pointer) at = slot.offset;
      else if (type.which() === Type.VOID) at = 0;
      else if (type.which() === Type.BOOL) at = slot.offset;
      else at = (slot.offset * SLOT_KINDS[type.which()]![1]) / 8;
      const section = pointer ? "ptr" : type.which() === Type.BOOL ? "bit" : "byte";
      fields.push(`      ${field.name}: { ${described}, ${section}: ${at}${when} },`);
    }
    const union = s.discriminantCount > 0 ? `, unionAt: ${s.discriminantOffset * 2}` : "";
    structs.push(
      `  "${name}": {\n    dataWords: ${s.dataWordCount},\n    pointers: ${s.pointerCount}${union},\n` +
        `    fields: {\n${fields.join("\n")}\n    },\n  },`,
    );
  }

  return [
    "// Generated by shared/scripts/gen.ts from shared/schema/pangea.capnp. Never edit; run `pnpm gen`.",
    "// Offsets: `byte` in the data section, `bit` for Bool, `ptr` an index in the pointer section;",
    "// `when` is the field's discriminant value in its struct's union (discriminant at `unionAt`).",
    "export const structs = {",
    ...structs,
    "} as const;",
    "",
    "export const enums = {",
    ...enums,
    "} as const;",
    "",
  ].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = join(sharedRoot, "src/gen");
  mkdirSync(dir, { recursive: true });
  for (const [name, contents] of await generate()) {
    writeFileSync(join(dir, name), contents);
    console.log(`wrote src/gen/${name}`);
  }
}
