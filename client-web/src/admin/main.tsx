import { createRoot } from "react-dom/client";
import "../ui/style.css";
import { AdminApp } from "./admin-app.tsx";

createRoot(document.getElementById("root")!).render(<AdminApp />);
