// The dashboard's datasets: the built-in ones and those brought, listed with their size, split
// and vocabulary or classes, and an upload form (a text file, or images and labels as IDX or
// .npy; gzip is unpacked here first, as MNIST's files ship). The coordinator checks every file
// whole and answers a refusal with one sentence per problem, shown as is.
import type { DatasetInfo } from "@pangea/shared";
import { type FormEvent, useCallback, useEffect, useState } from "react";
import { number } from "../ui/format.ts";
import { ApiError, api } from "./api.ts";

/** As the coordinator lists it (coordinator/src/core/dataset-catalog.ts). */
export interface DatasetRecord extends DatasetInfo {
  name: string;
  bytes: number;
  sha256: string;
  builtIn: boolean;
  vocabularyKind?: "char" | "byte";
}

/** The coordinator's datasets, and a way to read them again after an upload. */
export function useDatasets(): [DatasetRecord[], () => void] {
  const [datasets, setDatasets] = useState<DatasetRecord[]>([]);
  const reload = useCallback(() => {
    api<{ datasets: DatasetRecord[] }>("/api/datasets")
      .then((r) => setDatasets(r.datasets))
      .catch(() => setDatasets([]));
  }, []);
  useEffect(reload, [reload]);
  return [datasets, reload];
}

/** One line about a dataset: its split and what a model must match. */
export function describe(d: DatasetRecord): string {
  return d.kind === "text"
    ? `text, ${number(d.train)} / ${number(d.validation)} characters, vocabulary ${d.vocabulary}`
    : `images, ${number(d.train)} / ${number(d.validation)}, ${d.width} values, ${d.classes} classes`;
}

/** A file as bytes to send, unpacked when it is gzip-compressed. */
async function unpacked(file: File): Promise<Blob> {
  const head = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  if (head[0] !== 0x1f || head[1] !== 0x8b) return file;
  return new Response(file.stream().pipeThrough(new DecompressionStream("gzip"))).blob();
}

export function DatasetsPanel(props: { datasets: DatasetRecord[]; onAdded: () => void }) {
  const [kind, setKind] = useState<"text" | "images">("text");
  const [name, setName] = useState("");
  const [vocabulary, setVocabulary] = useState("char");
  const [files, setFiles] = useState<Record<string, File | undefined>>({});
  const [problems, setProblems] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const form = new FormData();
    form.set("name", name.trim());
    form.set("kind", kind);
    if (kind === "text") form.set("vocabulary", vocabulary);
    for (const part of kind === "text" ? ["file"] : ["images", "labels"]) {
      const file = files[part];
      if (file) form.set(part, await unpacked(file), file.name);
    }
    setBusy(true);
    try {
      await api("/api/datasets", { method: "POST", body: form });
      setProblems([]);
      setName("");
      props.onAdded();
    } catch (err) {
      setProblems(
        err instanceof ApiError && err.problems.length > 0 ? err.problems : [String(err)],
      );
    } finally {
      setBusy(false);
    }
  };
  const fileInput = (part: string, label: string) => (
    <label>
      {label}
      <input
        type="file"
        onChange={(e) => setFiles({ ...files, [part]: e.target.files?.[0] })}
        data-testid={`dataset-${part}`}
      />
    </label>
  );
  return (
    <section className="panel" data-testid="datasets">
      <h2>Datasets</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Contents (train / held out)</th>
            <th>Size</th>
            <th>SHA-256</th>
          </tr>
        </thead>
        <tbody>
          {props.datasets.map((d) => (
            <tr key={d.name} data-dataset={d.name}>
              <td>
                {d.name} {d.builtIn && <small>built in</small>}
              </td>
              <td>{describe(d)}</td>
              <td>{number(d.bytes)} bytes</td>
              <td>
                <code title={d.sha256}>{d.sha256.slice(0, 12)}…</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={submit} className="grid" data-testid="dataset-upload">
        <label>
          Name
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            data-testid="dataset-name"
          />
        </label>
        <label>
          Kind
          <select
            value={kind}
            onChange={(e) => setKind(e.target.value as "text" | "images")}
            data-testid="dataset-kind"
          >
            <option value="text">text (a language model's characters)</option>
            <option value="images">images and labels (IDX or .npy)</option>
          </select>
        </label>
        {kind === "text" ? (
          <>
            <label>
              Vocabulary
              <select value={vocabulary} onChange={(e) => setVocabulary(e.target.value)}>
                <option value="char">characters (at most 256 distinct)</option>
                <option value="byte">bytes (any file)</option>
              </select>
            </label>
            {fileInput("file", "Text file")}
          </>
        ) : (
          <>
            {fileInput("images", "Images (IDX or .npy, .gz too)")}
            {fileInput("labels", "Labels (IDX or .npy, .gz too)")}
          </>
        )}
        <button type="submit" disabled={busy} data-testid="dataset-add">
          {busy ? "Checking…" : "Add dataset"}
        </button>
      </form>
      {problems.length > 0 && (
        <ul className="problems" role="alert" data-testid="dataset-problems">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
    </section>
  );
}
