// The admin API with the token kept for this browser session only (sessionStorage).
const KEY = "pangea-admin-token";

export const token = {
  get: () => sessionStorage.getItem(KEY) ?? "",
  set: (t: string) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, {
    ...init,
    headers: {
      // A form (an upload) sets its own multipart content type.
      ...(init.body && !(init.body instanceof FormData)
        ? { "content-type": "application/json" }
        : {}),
      authorization: `Bearer ${token.get()}`,
      ...init.headers,
    },
  });
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as {
      message?: string;
      problems?: string[];
      error?: string;
    };
    throw new ApiError(
      response.status,
      body.message ?? body.error ?? response.statusText,
      body.problems ?? [],
    );
  }
  return (await response.json()) as T;
}

/** Downloads the run's checkpoint (a Cap'n Proto message, or safetensors) as a file. */
export async function downloadCheckpoint(
  runId: string,
  format: "capnp" | "safetensors" = "capnp",
): Promise<void> {
  const response = await fetch(
    `/api/runs/${encodeURIComponent(runId)}/checkpoint?format=${format}`,
    {
      headers: { authorization: `Bearer ${token.get()}` },
    },
  );
  if (!response.ok) throw new ApiError(response.status, "the checkpoint could not be read");
  const name =
    response.headers.get("content-disposition")?.match(/filename="([^"]+)"/)?.[1] ??
    `${runId}.${format}`;
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
